# kubectl-mlplatform — the targets CI and people use.
#   make run     build, then run the webhook locally (against $KUBECONFIG, or a local API double)
#   make test    install test prerequisites if missing (moto_server, kubectl), run every test
#   make lint    rustfmt + clippy -D warnings
#   make bench   webhook throughput/latency vs a no-op ceiling, plugin connect timing
#   make e2e     end-to-end suite against a real cluster named by MLPLATFORM_E2E_KUBECONFIG
#   make dist    release archives + checksums + krew manifest

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build run test deps lint fmt bench e2e dist clean

all: build

build:
	$(CARGO) build --workspace --release --bins

run: build
	scripts/run-webhook-local.sh

deps:
	scripts/install-test-deps.sh

test: deps
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	scripts/lint-workflows.sh
	scripts/conformance.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: deps
	$(CARGO) build --release -p mlplatform-webhook -p kubectl-mlplatform -p mlplatform-testkit -p mlplatform-bench
	scripts/bench.sh

e2e: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test -p mlplatform-e2e -- --nocapture

dist:
	scripts/dist.sh

clean:
	$(CARGO) clean
