//! The server's fast reader: one pass over the request body with a small validating JSON
//! scanner, reading the fields the decisions need into the same structs the serde reader
//! ([`crate::admission::parse_review`]) produces and skipping everything else.
//!
//! It only ever answers `Some` when serde_json would have accepted the body and produced the
//! same values: it checks skipped JSON as strictly as serde_json's `IgnoredAny` does (string
//! escapes and control characters, numbers, literals, nesting, trailing characters) and the
//! fields it reads as strictly as the derived `Deserialize` impls (types, nulls, duplicate
//! fields), and checks that the whole `object` is UTF-8, as the serde reader's `RawValue`
//! requires. Anything it does not handle itself (escapes in a string it reads, a key or value
//! of an unexpected type, the object before its kind, deep nesting) gives `None`, and the
//! caller answers with the serde reader instead. The property tests compare both readers.

use std::borrow::Cow;

use crate::Endpoint;
use crate::objects::{
    AnnotationKeys, Container, EnvNames, HasToken, JobTemplate, KeepKeys, ObjectMeta, OsKeys, Pod,
    PodForValidation, PodSecurityContext, PodServiceAccount, PodSpec, PodTemplate, ServiceAccount,
    StrMap, TOKEN_MOUNT_PATH, TOKEN_VOLUME, Text, VolumeMounts, Volumes, Workload, WorkloadSpec,
};
use crate::review::{AdmissionRequest, GroupVersionKind, Object, Operation, View, object_view};

/// Nesting a skipped value may have before the serde reader takes over.
const MAX_SKIP_DEPTH: usize = 128;
/// CronJob → jobTemplate → spec → ... nesting before the serde reader takes over.
const MAX_WORKLOAD_DEPTH: usize = 8;

/// Reads `body` for `endpoint`; `None`: use the serde reader.
pub(crate) fn read_review(endpoint: Endpoint, body: &[u8]) -> Option<AdmissionRequest<'_>> {
    let mut json = Json {
        bytes: body,
        pos: 0,
        non_ascii: false,
    };
    let (mut api_version, mut kind, mut request) = (None, None, None);
    json.object(|j, key| match key {
        b"apiVersion" => once(&mut api_version, j.opt_text()?),
        b"kind" => once(&mut kind, j.opt_text()?),
        b"request" => once(&mut request, j.request(endpoint)?),
        _ => j.skip(),
    })?;
    if json.peek().is_some() {
        return None;
    }
    let valid = api_version
        .flatten()
        .is_some_and(|v| *v == *crate::review::API_VERSION)
        && kind.flatten().is_some_and(|k| *k == *crate::review::KIND);
    let request = request?;
    (valid && !request.uid.is_empty()).then_some(request)
}

/// Stores a field seen for the first time; `None` for a repeated one (serde derive rejects it).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

struct Json<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Set when a scanned string had a non-ASCII byte (or may have had).
    non_ascii: bool,
}

/// A string's raw content.
struct Raw<'a> {
    bytes: &'a [u8],
    escaped: bool,
    ascii: bool,
}

impl<'a> Json<'a> {
    fn byte(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The next byte after whitespace (JSON's four), not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.byte() {
            self.pos += 1;
        }
        self.byte()
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.pos += 1)
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.pos + rest.len();
        (self.bytes.get(self.pos..end)? == rest).then(|| self.pos = end)
    }

    /// Consumes `null` when it is next.
    fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes.get(self.pos + 1..self.pos + 4) == Some(b"ull") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// After an opening quote: the string's raw bytes up to the closing quote. Checked as
    /// serde_json checks strings it skips: no control characters, only JSON's escapes, four
    /// hex digits after `\u`. Scans a chunk at a time with the bit trick serde_json uses
    /// (exact for the first match).
    #[inline(always)]
    fn string_body(&mut self) -> Option<Raw<'a>> {
        const ONES: u64 = u64::MAX / 255;
        const HIGH: u64 = ONES << 7;
        let start = self.pos;
        let mut escaped = false;
        // Bytes seen, OR-ed: its high bits tell whether any was non-ASCII (conservatively:
        // a chunk may reach past the string).
        let mut seen = 0u64;
        loop {
            let byte = loop {
                let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) else {
                    // The last few bytes of the body, one at a time.
                    let byte = self.byte()?;
                    seen |= u64::from(byte);
                    if byte < 0x20 || byte == b'"' || byte == b'\\' {
                        break byte;
                    }
                    self.pos += 1;
                    continue;
                };
                let x = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
                seen |= x;
                let control = x.wrapping_sub(ONES * 0x20) & !x;
                let quote = x ^ (ONES * u64::from(b'"'));
                let quote = quote.wrapping_sub(ONES) & !quote;
                let backslash = x ^ (ONES * u64::from(b'\\'));
                let backslash = backslash.wrapping_sub(ONES) & !backslash;
                let found = (control | quote | backslash) & HIGH;
                if found != 0 {
                    // Which special byte it is, from the masks (no reload).
                    let first = found & found.wrapping_neg();
                    self.pos += (found.trailing_zeros() / 8) as usize;
                    break if quote & first != 0 {
                        b'"'
                    } else if backslash & first != 0 {
                        b'\\'
                    } else {
                        0
                    };
                }
                self.pos += 8;
            };
            match byte {
                b'"' => {
                    let raw = &self.bytes[start..self.pos];
                    self.pos += 1;
                    let ascii = seen & HIGH == 0;
                    self.non_ascii |= !ascii;
                    return Some(Raw {
                        bytes: raw,
                        escaped,
                        ascii,
                    });
                }
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(self.pos + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 2..self.pos + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.pos += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
    }

    /// A string read as a value: without escapes (those are left to serde), valid UTF-8.
    fn text(&mut self) -> Option<Text<'a>> {
        self.eat(b'"')?;
        let raw = self.string_body()?;
        if raw.escaped {
            return None;
        }
        std::str::from_utf8(raw.bytes)
            .ok()
            .map(|s| Text(Cow::Borrowed(s)))
    }

    /// An object key: without escapes, checked to be UTF-8 as serde checks keys it reads.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let raw = self.string_body()?;
        if raw.escaped || (!raw.ascii && std::str::from_utf8(raw.bytes).is_err()) {
            return None;
        }
        Some(raw.bytes)
    }

    /// `Option<Text>`: null is `None`.
    fn opt_text(&mut self) -> Option<Option<Text<'a>>> {
        if self.null() {
            Some(None)
        } else {
            self.text().map(Some)
        }
    }

    /// An object; `field` must consume each value. Keys are read with [`Self::key`].
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array; `element` must consume each element.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips one value of any type, checking it as serde_json's `ignore_value` does.
    fn skip(&mut self) -> Option<()> {
        // Most skipped values are strings.
        if self.peek()? == b'"' {
            self.pos += 1;
            return self.string_body().map(drop);
        }
        // The open containers, one bit each (1: object), innermost lowest.
        let mut frames: u128 = 0;
        let mut depth = 0;
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    self.string_body()?;
                }
                b'n' => {
                    self.pos += 1;
                    self.literal(b"ull")?;
                }
                b't' => {
                    self.pos += 1;
                    self.literal(b"rue")?;
                }
                b'f' => {
                    self.pos += 1;
                    self.literal(b"alse")?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                open @ (b'[' | b'{') => {
                    self.pos += 1;
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.peek()? != close {
                        if depth == MAX_SKIP_DEPTH {
                            return None;
                        }
                        frames = frames << 1 | u128::from(open == b'{');
                        depth += 1;
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                    self.pos += 1;
                }
                _ => return None,
            }
            // After a value: close finished containers, or go on after a comma.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = frames & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        if in_object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b']' if !in_object => {}
                    b'}' if in_object => {}
                    _ => return None,
                }
                self.pos += 1;
                frames >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key and its colon inside a skipped object.
    fn skip_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string_body()?;
        self.eat(b':')
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.byte() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, with serde_json's grammar (one leading zero, digits after `.` and `e`).
    fn number(&mut self) -> Option<()> {
        if self.byte() == Some(b'-') {
            self.pos += 1;
        }
        match self.byte()? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.byte() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.byte() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.byte() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.byte() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    // ---- The fields the decisions read, as the derived `Deserialize` impls read them ----

    fn request(&mut self, endpoint: Endpoint) -> Option<AdmissionRequest<'a>> {
        let (mut uid, mut kind, mut sub_resource, mut name, mut namespace) =
            (None, None, None, None, None);
        let (mut operation, mut object) = (None, None);
        self.object(|j, key| match key {
            b"uid" => once(&mut uid, j.text()?),
            b"kind" => once(&mut kind, j.group_version_kind()?),
            b"subResource" => once(&mut sub_resource, j.opt_text()?),
            b"name" => once(&mut name, j.opt_text()?),
            b"namespace" => once(&mut namespace, j.opt_text()?),
            b"operation" => once(&mut operation, j.operation()?),
            b"object" => {
                // The API server sends kind and operation first; otherwise serde reads it.
                let (Some(kind), Some(operation)) = (&kind, operation) else {
                    return None;
                };
                let subresource = sub_resource.as_ref().is_some_and(|s: &Option<Text<'_>>| {
                    s.as_deref().is_some_and(|s| !s.is_empty())
                });
                j.peek()?;
                let start = j.pos;
                let non_ascii_before = std::mem::replace(&mut j.non_ascii, false);
                let read = match object_view(endpoint, kind, operation, subresource) {
                    None => {
                        j.skip()?;
                        Object::Skipped
                    }
                    Some(_) if j.null() => Object::Absent,
                    Some(View::Pod) => Object::Pod(Box::new(j.pod()?)),
                    Some(View::PodForValidation) => {
                        Object::PodForValidation(Box::new(j.pod_for_validation()?))
                    }
                    Some(View::Workload) => Object::Workload(Box::new(j.workload(0)?)),
                    Some(View::ServiceAccount) => {
                        Object::ServiceAccount(Box::new(j.service_account()?))
                    }
                };
                // The serde reader holds the object as a `RawValue`, which must be UTF-8
                // throughout, skipped strings included (outside strings JSON is ASCII).
                if j.non_ascii {
                    std::str::from_utf8(j.bytes.get(start..j.pos)?).ok()?;
                }
                j.non_ascii |= non_ascii_before;
                once(&mut object, read)
            }
            _ => j.skip(),
        })?;
        Some(AdmissionRequest {
            uid: uid.unwrap_or_default().0,
            kind: kind.unwrap_or_default(),
            sub_resource: sub_resource.flatten(),
            name: name.flatten(),
            namespace: namespace.flatten(),
            operation: operation?,
            object: object.unwrap_or_default(),
        })
    }

    fn group_version_kind(&mut self) -> Option<GroupVersionKind<'a>> {
        let (mut group, mut version, mut kind) = (None, None, None);
        self.object(|j, key| match key {
            b"group" => once(&mut group, j.text()?),
            b"version" => once(&mut version, j.text()?),
            b"kind" => once(&mut kind, j.text()?),
            _ => j.skip(),
        })?;
        Some(GroupVersionKind {
            group: group.unwrap_or_default().0,
            version: version.unwrap_or_default().0,
            kind: kind.unwrap_or_default().0,
        })
    }

    fn operation(&mut self) -> Option<Operation> {
        Some(match &*self.text()? {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => return None,
        })
    }

    /// A map of strings of which `K` keeps some entries (every value must be a string).
    fn str_map<K: KeepKeys>(&mut self) -> Option<StrMap<'a, K>> {
        let mut map = StrMap::default();
        self.object(|j, key| {
            let value = j.text()?;
            // `key` is UTF-8 (checked by `key`); only kept keys need it as a str.
            if let Ok(key) = std::str::from_utf8(key)
                && K::keep(key)
            {
                map.push(Text(Cow::Borrowed(key)), value);
            }
            Some(())
        })?;
        Some(map)
    }

    fn opt_str_map<K: KeepKeys>(&mut self) -> Option<Option<StrMap<'a, K>>> {
        if self.null() {
            Some(None)
        } else {
            self.str_map().map(Some)
        }
    }

    fn meta(&mut self) -> Option<ObjectMeta<'a>> {
        let (mut name, mut generate_name, mut annotations, mut deletion_timestamp) =
            (None, None, None, None);
        self.object(|j, key| match key {
            b"name" => once(&mut name, j.opt_text()?),
            b"generateName" => once(&mut generate_name, j.opt_text()?),
            b"annotations" => once(&mut annotations, j.opt_str_map::<AnnotationKeys>()?),
            b"deletionTimestamp" => once(&mut deletion_timestamp, j.opt_text()?),
            _ => j.skip(),
        })?;
        Some(ObjectMeta {
            name: name.flatten(),
            generate_name: generate_name.flatten(),
            annotations: annotations.flatten(),
            deletion_timestamp: deletion_timestamp.flatten(),
        })
    }

    fn pod(&mut self) -> Option<Pod<'a>> {
        let (mut metadata, mut spec) = (None, None);
        self.object(|j, key| match key {
            b"metadata" => once(&mut metadata, j.meta()?),
            b"spec" => once(&mut spec, j.pod_spec()?),
            _ => j.skip(),
        })?;
        Some(Pod {
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        })
    }

    fn pod_spec(&mut self) -> Option<PodSpec<'a>> {
        let (mut service_account_name, mut service_account, mut node_selector) = (None, None, None);
        let (mut containers, mut init_containers, mut volumes) = (None, None, None);
        let mut security_context = None;
        self.object(|j, key| match key {
            b"serviceAccountName" => once(&mut service_account_name, j.opt_text()?),
            b"serviceAccount" => once(&mut service_account, j.opt_text()?),
            b"nodeSelector" => once(&mut node_selector, j.opt_str_map::<OsKeys>()?),
            b"containers" => once(&mut containers, j.containers()?),
            b"initContainers" => once(&mut init_containers, j.containers()?),
            b"volumes" => once(&mut volumes, j.volumes()?),
            b"securityContext" => once(&mut security_context, j.security_context()?),
            _ => j.skip(),
        })?;
        Some(PodSpec {
            service_account_name: service_account_name.flatten(),
            service_account: service_account.flatten(),
            node_selector: node_selector.flatten(),
            containers: containers.flatten(),
            init_containers: init_containers.flatten(),
            volumes: volumes.flatten(),
            security_context: security_context.flatten(),
        })
    }

    fn security_context(&mut self) -> Option<Option<PodSecurityContext>> {
        if self.null() {
            return Some(None);
        }
        let mut fs_group = None;
        self.object(|j, key| match key {
            b"fsGroup" => once(&mut fs_group, j.opt_i64()?),
            _ => j.skip(),
        })?;
        Some(Some(PodSecurityContext {
            fs_group: fs_group.flatten(),
        }))
    }

    /// `Option<i64>`: an integer literal that fits; a fraction, an exponent or an overflow
    /// is left to serde (which rejects them).
    fn opt_i64(&mut self) -> Option<Option<i64>> {
        if self.null() {
            return Some(None);
        }
        self.peek()?;
        let start = self.pos;
        self.number()?;
        let literal = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        // serde_json reads `-0` as a float.
        if literal.contains(['.', 'e', 'E']) || literal == "-0" {
            return None;
        }
        literal.parse().ok().map(Some)
    }

    fn containers(&mut self) -> Option<Option<Vec<Container<'a>>>> {
        if self.null() {
            return Some(None);
        }
        let mut list = Vec::new();
        self.array(|j| {
            list.push(j.container()?);
            Some(())
        })?;
        Some(Some(list))
    }

    fn container(&mut self) -> Option<Container<'a>> {
        let (mut name, mut env, mut volume_mounts) = (None, None, None);
        self.object(|j, key| match key {
            b"name" => once(&mut name, j.text()?),
            b"env" => once(&mut env, j.env()?),
            b"volumeMounts" => once(&mut volume_mounts, j.volume_mounts()?),
            _ => j.skip(),
        })?;
        Some(Container {
            name: name.unwrap_or_default(),
            env: env.flatten(),
            volume_mounts: volume_mounts.flatten(),
        })
    }

    /// An object's `name` (`Named`).
    fn named(&mut self) -> Option<Text<'a>> {
        let mut name = None;
        self.object(|j, key| match key {
            b"name" => once(&mut name, j.text()?),
            _ => j.skip(),
        })?;
        Some(name.unwrap_or_default())
    }

    fn env(&mut self) -> Option<Option<EnvNames>> {
        if self.null() {
            return Some(None);
        }
        let mut names = EnvNames::default();
        self.array(|j| {
            names = names.with(&j.named()?);
            Some(())
        })?;
        Some(Some(names))
    }

    fn volumes(&mut self) -> Option<Option<Volumes>> {
        if self.null() {
            return Some(None);
        }
        let mut found = false;
        self.array(|j| {
            found |= *j.named()? == *TOKEN_VOLUME;
            Some(())
        })?;
        Some(Some(Volumes(HasToken(found))))
    }

    fn volume_mounts(&mut self) -> Option<Option<VolumeMounts>> {
        if self.null() {
            return Some(None);
        }
        let mut found = false;
        self.array(|j| {
            let (mut name, mut mount_path) = (None, None);
            j.object(|j, key| match key {
                b"name" => once(&mut name, j.text()?),
                b"mountPath" => once(&mut mount_path, j.text()?),
                _ => j.skip(),
            })?;
            found |= name.is_some_and(|n| *n == *TOKEN_VOLUME)
                || mount_path.is_some_and(|p| *p == *TOKEN_MOUNT_PATH);
            Some(())
        })?;
        Some(Some(VolumeMounts(HasToken(found))))
    }

    fn pod_service_account(&mut self) -> Option<PodServiceAccount<'a>> {
        let (mut service_account_name, mut service_account) = (None, None);
        self.object(|j, key| match key {
            b"serviceAccountName" => once(&mut service_account_name, j.opt_text()?),
            b"serviceAccount" => once(&mut service_account, j.opt_text()?),
            _ => j.skip(),
        })?;
        Some(PodServiceAccount {
            service_account_name: service_account_name.flatten(),
            service_account: service_account.flatten(),
        })
    }

    fn pod_for_validation(&mut self) -> Option<PodForValidation<'a>> {
        let (mut metadata, mut spec) = (None, None);
        self.object(|j, key| match key {
            b"metadata" => once(&mut metadata, j.meta()?),
            b"spec" => once(&mut spec, j.pod_service_account()?),
            _ => j.skip(),
        })?;
        Some(PodForValidation {
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        })
    }

    fn workload(&mut self, depth: usize) -> Option<Workload<'a>> {
        let (mut metadata, mut spec) = (None, None);
        self.object(|j, key| match key {
            b"metadata" => once(&mut metadata, j.meta()?),
            b"spec" => once(&mut spec, j.workload_spec(depth)?),
            _ => j.skip(),
        })?;
        Some(Workload {
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        })
    }

    fn workload_spec(&mut self, depth: usize) -> Option<WorkloadSpec<'a>> {
        if depth > MAX_WORKLOAD_DEPTH {
            return None;
        }
        let (mut template, mut job_template) = (None, None);
        self.object(|j, key| match key {
            b"template" => {
                let mut spec = None;
                j.object(|j, key| match key {
                    b"spec" => once(&mut spec, j.pod_service_account()?),
                    _ => j.skip(),
                })?;
                once(
                    &mut template,
                    PodTemplate {
                        spec: spec.unwrap_or_default(),
                    },
                )
            }
            b"jobTemplate" => {
                let read = if j.null() {
                    None
                } else {
                    let mut spec = None;
                    j.object(|j, key| match key {
                        b"spec" => once(&mut spec, j.workload_spec(depth + 1)?),
                        _ => j.skip(),
                    })?;
                    Some(Box::new(JobTemplate {
                        spec: spec.unwrap_or_default(),
                    }))
                };
                once(&mut job_template, read)
            }
            _ => j.skip(),
        })?;
        Some(WorkloadSpec {
            template: template.unwrap_or_default(),
            job_template: job_template.flatten(),
        })
    }

    fn service_account(&mut self) -> Option<ServiceAccount<'a>> {
        let mut metadata = None;
        self.object(|j, key| match key {
            b"metadata" => once(&mut metadata, j.meta()?),
            _ => j.skip(),
        })?;
        Some(ServiceAccount {
            metadata: metadata.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(json: &str) -> bool {
        let mut j = Json {
            bytes: json.as_bytes(),
            pos: 0,
            non_ascii: false,
        };
        j.skip().is_some() && j.peek().is_none()
    }

    #[test]
    fn strings_end_at_the_first_quote_and_know_if_they_are_ascii() {
        for (s, len, ascii) in [
            ("\"", 0, true),
            ("abc\"", 3, true),
            ("0123456789abcdef\\\"x\"", 19, true),
            ("0123456789abcdefghijklmnopqrstuvwxyz0123456789\"", 46, true),
            ("0123456789abcdefghij\\u00e9klmnopqrstuvwxyz\"", 42, true),
            ("0123456789abcdefghijklmnopqrstuvwxyzé\"", 38, false),
            ("ünïcödé ünïcödé\"", "ünïcödé ünïcödé".len(), false),
            (
                "\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\"",
                8,
                true,
            ),
        ] {
            let mut j = Json {
                bytes: s.as_bytes(),
                pos: 0,
                non_ascii: false,
            };
            let raw = j.string_body().unwrap();
            assert_eq!((raw.bytes.len(), raw.ascii), (len, ascii), "{s:?}");
            assert_eq!(j.pos, len + 1);
        }
        for bad in [
            "abc",
            "a\u{1}\"",
            "01234567\u{1f}\"",
            "0123456789abcdefghijklmnopqrstuvwxyz\u{1f}\"",
            "0123456789abcdefghij\\x\"",
        ] {
            let mut j = Json {
                bytes: bad.as_bytes(),
                pos: 0,
                non_ascii: false,
            };
            assert!(j.string_body().is_none(), "{bad:?}");
        }
    }

    #[test]
    fn skips_what_serde_json_accepts_and_nothing_else() {
        let cases = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "12",
            "1.5",
            "-1.5e10",
            "2E-3",
            "1e+2",
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9""#,
            "[]",
            "{}",
            " [ 1 , { \"a\" : [ ] } ] ",
            r#"{"k":{"k":[{"k":null}]}}"#,
            "\"\u{7f}\"",
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            "nul",
            "tru",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
            "[1 2]",
            "\"\u{1}\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "[",
            "{",
            "\"abc",
            "]",
            "[1]]",
            "{\"a\":1}}",
            "nullx",
            "{\"\u{1}\":1}",
            r#"{"\x":1}"#,
            r#"{"a\"b":1}"#,
            "{\"a\" 1}",
            "[\"a\":1]",
            "{\"\u{ff}\":\"\u{100}\"}",
        ];
        for case in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(case).is_ok();
            assert_eq!(skips(case), serde, "{case:?}");
        }
        let deep = "[".repeat(MAX_SKIP_DEPTH + 2) + &"]".repeat(MAX_SKIP_DEPTH + 2);
        assert!(!skips(&deep), "deeper than the scanner goes: left to serde");
    }

    /// The real reviews, in the API server's field order, are read here, not left to serde,
    /// and give what the serde reader gives.
    #[test]
    fn reads_real_api_server_reviews_in_one_pass() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-reviews");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let review: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let request = review["request"].as_object().unwrap();
            let order = [
                "uid",
                "kind",
                "resource",
                "subResource",
                "requestKind",
                "requestResource",
                "requestSubResource",
                "name",
                "namespace",
                "operation",
                "userInfo",
                "object",
                "oldObject",
                "dryRun",
                "options",
            ];
            let fields: Vec<String> = order
                .iter()
                .filter_map(|f| request.get(*f).map(|v| format!("{:?}:{v}", f)))
                .collect();
            let body = format!(
                r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{{}}}}}"#,
                fields.join(",")
            );
            for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
                let fast = read_review(endpoint, body.as_bytes());
                let fast =
                    fast.unwrap_or_else(|| panic!("{}: not read in one pass", path.display()));
                let reference = crate::admission::parse_review(body.as_bytes()).unwrap();
                assert_eq!(fast.uid, reference.uid);
                assert_eq!(fast.operation, reference.operation);
                assert_eq!(fast.namespace, reference.namespace);
                read += 1;
            }
        }
        assert_eq!(read, 52);
    }
}
