//! Watch streams: newline-delimited events replayed from history or synthesized from the
//! current state, then live, with bookmarks, 410 Gone, selectors and a timeout.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::render::{Shape, metadata_only};
use super::request::{Query, Shared, lock};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{WatchEvent, filter_event};

fn event_line(event_type: &str, object: Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct WatchState {
    shared: Arc<Shared>,
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    shape: Shape,
    pending: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<WatchEvent>>,
    covered_rv: u64,
    deadline: Instant,
    bookmarks: bool,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl WatchState {
    fn render_event(&self, event: &WatchEvent) -> Bytes {
        let object = match self.shape {
            Shape::Metadata => metadata_only(&event.object),
            _ => event.object.clone(),
        };
        event_line(event.event_type.as_str(), object)
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = match self.shape {
            Shape::Metadata => (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadata".to_string(),
            ),
            _ => (self.rt.api_version(), self.rt.kind.clone()),
        };
        event_line(
            "BOOKMARK",
            json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
        )
    }

    /// The next chunk of the stream, or None when the watch ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(chunk);
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) => {
                        if event.resource_version <= self.covered_rv {
                            continue;
                        }
                        self.covered_rv = event.resource_version;
                        let ns = self.namespace.as_deref();
                        if let Some(seen) = filter_event(&event, &self.rt, ns, &self.labels, &self.fields) {
                            return Some(self.render_event(&seen));
                        }
                    }
                    // Fell behind the live feed: end the watch; the client re-watches from
                    // its last resourceVersion and gets the rest from history.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(self.deadline) => {
                    self.done = true;
                    if self.bookmarks {
                        let rv = lock(&self.shared.store).current_rv();
                        return Some(self.bookmark(rv, false));
                    }
                    return None;
                }
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        return None;
                    }
                }
            }
        }
    }
}

pub fn watch_response(
    shared: &Arc<Shared>,
    query: &Query,
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    shape: Shape,
) -> Result<Response, ApiError> {
    let send_initial = query.flag("sendInitialEvents");
    let since = match query.get("resourceVersion") {
        None | Some("" | "0") => None,
        Some(_) if send_initial => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?,
        ),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let started = {
        let store = lock(&shared.store);
        store.watch_start(&rt, namespace.as_deref(), since, &labels, &fields)
    };
    let state = match started {
        Ok(start) => WatchState {
            shared: shared.clone(),
            rt,
            namespace,
            labels,
            fields,
            shape,
            pending: VecDeque::new(),
            live: start.live,
            covered_rv: start.covered_rv,
            deadline: Instant::now() + Duration::from_secs(timeout),
            bookmarks: query.flag("allowWatchBookmarks"),
            shutdown: shared.shutdown.clone(),
            done: false,
        }
        .with_initial(start.initial, send_initial),
        Err(err) if err.code == 410 => {
            // The apiserver answers 200 and sends the 410 as an ERROR event.
            let body = event_line("ERROR", err.to_status());
            return Ok(stream_response(futures::stream::iter([Ok::<
                _,
                std::io::Error,
            >(body)])));
        }
        Err(err) => return Err(err),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        state
            .next_chunk()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), state))
    });
    Ok(stream_response(stream))
}

impl WatchState {
    fn with_initial(mut self, initial: Vec<WatchEvent>, send_initial: bool) -> Self {
        for event in &initial {
            let line = self.render_event(event);
            self.pending.push_back(line);
        }
        if send_initial {
            let end = self.bookmark(self.covered_rv, true);
            self.pending.push_back(end);
        }
        self
    }
}

pub fn stream_response<S>(stream: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}
