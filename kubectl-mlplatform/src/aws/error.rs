//! AWS failures as one line that says what is wrong and what to do.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS credentials found ({detail}): configure them (`aws configure`, `aws sso login`, AWS_PROFILE or AWS_ACCESS_KEY_ID) and re-run"
    )]
    NoCredentials { detail: String },
    #[error("AWS credentials expired: refresh them (e.g. `aws sso login`) and re-run")]
    CredentialsExpired,
    #[error(
        "AWS rejected the credentials during {operation} ({code}): check AWS_PROFILE / the access key and re-run"
    )]
    InvalidCredentials { operation: String, code: String },
    #[error(
        "access denied for {operation} ({message}): grant that action to the AWS identity running kubectl mlplatform, or use another profile"
    )]
    AccessDenied { operation: String, message: String },
    #[error("EKS cluster \"{name}\" not found in {region}: check --cluster and --region")]
    ClusterNotFound { name: String, region: String },
    #[error(
        "no AWS region configured: pass --region or set AWS_REGION (or a region in your AWS profile)"
    )]
    NoRegion,
    #[error(
        "cannot reach the AWS endpoint for {operation} ({message}): check the network, proxy settings and AWS_ENDPOINT_URL"
    )]
    EndpointUnreachable { operation: String, message: String },
    #[error("AWS {operation} failed: {code}: {message}")]
    Service {
        operation: String,
        code: String,
        message: String,
    },
    #[error("AWS {operation} returned something unreadable: {message}")]
    BadResponse { operation: String, message: String },
    #[error("invalid input for AWS {operation}: {message}")]
    InvalidInput { operation: String, message: String },
}

impl AwsError {
    /// The service error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } | Self::InvalidCredentials { code, .. } => Some(code),
            _ => None,
        }
    }

    /// AWS said the thing is not there: IAM's `NoSuchEntity`, EKS's `ResourceNotFoundException`.
    pub(crate) fn is_missing(&self) -> bool {
        matches!(
            self,
            Self::Service { code, .. } if code == "NoSuchEntity" || code == "ResourceNotFoundException"
        )
    }
}

/// A read's answer when AWS said the thing is not there: `None`; any other error stays one.
pub(crate) fn missing_as_none<T>(err: AwsError) -> Result<Option<T>, AwsError> {
    if err.is_missing() { Ok(None) } else { Err(err) }
}

/// A delete's answer when the thing is already gone: the goal holds.
pub(crate) fn ignore_missing(err: AwsError) -> Result<(), AwsError> {
    if err.is_missing() { Ok(()) } else { Err(err) }
}

const EXPIRED_CODES: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
];
const INVALID_CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "NotAuthorized",
];

/// The error's source chain flattened into one line (SDK errors nest the useful part deep).
fn one_line(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ").replace('\n', " ")
}

fn find_credentials_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a CredentialsError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn credentials_problem(err: &CredentialsError) -> AwsError {
    let detail = one_line(err);
    let lower = detail.to_ascii_lowercase();
    if lower.contains("expired") {
        return AwsError::CredentialsExpired;
    }
    AwsError::NoCredentials { detail }
}

/// Classifies a service error code (from the response) for `operation` (e.g. `iam:GetRole`).
pub(crate) fn classify_code(operation: &str, code: &str, message: &str) -> AwsError {
    if EXPIRED_CODES.contains(&code) {
        AwsError::CredentialsExpired
    } else if INVALID_CREDENTIAL_CODES.contains(&code) {
        AwsError::InvalidCredentials {
            operation: operation.to_string(),
            code: code.to_string(),
        }
    } else if ACCESS_DENIED_CODES.contains(&code) {
        AwsError::AccessDenied {
            operation: operation.to_string(),
            message: message.replace('\n', " "),
        }
    } else {
        AwsError::Service {
            operation: operation.to_string(),
            code: code.to_string(),
            message: message.replace('\n', " "),
        }
    }
}

/// Turns any SDK error into an [`AwsError`]. `operation` names the IAM-style action
/// (`iam:CreateRole`), which is also what an access-denied message must name.
pub(crate) fn classify<E>(operation: &str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let Some(creds) = find_credentials_error(&err) {
        return credentials_problem(creds);
    }
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or("no message");
            classify_code(operation, code, message)
        }
        // Not sent, or no HTTP answer (refused, timed out, TLS, not an HTTP server).
        SdkError::DispatchFailure(d) if !d.is_user() => AwsError::EndpointUnreachable {
            operation: operation.to_string(),
            message: one_line(&err),
        },
        SdkError::TimeoutError(_) => AwsError::EndpointUnreachable {
            operation: operation.to_string(),
            message: "timed out".to_string(),
        },
        SdkError::ResponseError(_) => AwsError::BadResponse {
            operation: operation.to_string(),
            message: one_line(&err),
        },
        _ => {
            let message = one_line(&err);
            if message.contains("region") && message.contains("missing") {
                AwsError::NoRegion
            } else {
                AwsError::Service {
                    operation: operation.to_string(),
                    code: "ClientError".to_string(),
                    message,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(code: &str, message: &str) -> SdkError<GetCallerIdentityError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(
            GetCallerIdentityError::generic(meta),
            HttpResponse::new(StatusCode::try_from(403).unwrap(), SdkBody::empty()),
        )
    }

    // moto_server cannot expire credentials, so the expired-token paths are shown on
    // constructed SDK errors of the shapes STS and the credential providers return.
    #[test]
    fn expired_token_says_refresh_and_rerun() {
        let err = classify(
            "sts:GetCallerIdentity",
            service_error(
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
        );
        assert_eq!(err, AwsError::CredentialsExpired);
        assert_eq!(
            err.to_string(),
            "AWS credentials expired: refresh them (e.g. `aws sso login`) and re-run"
        );
    }

    #[test]
    fn expired_sso_session_from_the_credentials_provider() {
        let source = CredentialsError::provider_error("the SSO session has expired or is invalid");
        let err: SdkError<GetCallerIdentityError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(source), None));
        assert_eq!(
            classify("sts:GetCallerIdentity", err),
            AwsError::CredentialsExpired
        );
    }

    #[test]
    fn missing_credentials() {
        let source = CredentialsError::not_loaded("no providers in chain provided credentials");
        let err: SdkError<GetCallerIdentityError, HttpResponse> =
            SdkError::construction_failure(source);
        let classified = classify("sts:GetCallerIdentity", err);
        assert!(
            matches!(classified, AwsError::NoCredentials { .. }),
            "{classified}"
        );
        assert!(classified.to_string().contains("aws sso login"));
    }

    #[test]
    fn access_denied_names_the_action() {
        let err = classify(
            "iam:CreateRole",
            service_error("AccessDenied", "User: x is not authorized"),
        );
        let line = err.to_string();
        assert!(
            line.starts_with("access denied for iam:CreateRole"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn invalid_key_and_other_service_errors() {
        assert!(matches!(
            classify(
                "sts:GetCallerIdentity",
                service_error("InvalidClientTokenId", "bad")
            ),
            AwsError::InvalidCredentials { .. }
        ));
        let other = classify(
            "iam:CreateRole",
            service_error("LimitExceeded", "too many\nroles"),
        );
        assert_eq!(
            other.to_string(),
            "AWS iam:CreateRole failed: LimitExceeded: too many roles"
        );
        assert_eq!(other.code(), Some("LimitExceeded"));
    }

    #[test]
    fn unreachable_endpoint() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err: SdkError<GetCallerIdentityError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let classified = classify("sts:GetCallerIdentity", err);
        assert!(
            matches!(classified, AwsError::EndpointUnreachable { .. }),
            "{classified}"
        );
        assert!(classified.to_string().contains("AWS_ENDPOINT_URL"));

        // Something answered, but not HTTP (a wrong AWS_ENDPOINT_URL port).
        let garbage = std::io::Error::other("invalid HTTP version parsed");
        let err: SdkError<GetCallerIdentityError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(garbage), None));
        let classified = classify("sts:GetCallerIdentity", err);
        assert!(
            matches!(classified, AwsError::EndpointUnreachable { .. }),
            "{classified}"
        );
        assert!(
            classified.to_string().contains("invalid HTTP version"),
            "{classified}"
        );
    }
}
