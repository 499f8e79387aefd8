//! Identity: requests carry `Authorization: Bearer <JWT>` (HS256). The token's `sub` is the user
//! id; no operation takes a user id from its arguments. An optional `role` claim says what else
//! the caller may do: `"organiser"` may create and run on-sales ([`Role`]); without it the caller
//! is a fan.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::error::AppError;
use crate::ids::UserId;

/// The authenticated caller of a request or websocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: UserId,
    pub role: Role,
}

impl Viewer {
    /// A fan: the caller of every fan operation.
    pub fn fan(user_id: UserId) -> Self {
        Self {
            user_id,
            role: Role::Fan,
        }
    }

    /// The caller, if they may run organiser operations; `FORBIDDEN` otherwise.
    pub fn organiser(self) -> Result<Self, AppError> {
        match self.role {
            Role::Organiser => Ok(self),
            Role::Fan => Err(AppError::Forbidden(
                "this operation is for organisers: it needs an access token with the `role` claim \"organiser\"".into(),
            )),
        }
    }
}

/// What a caller may do besides buying tickets: the token's `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No `role` claim: holds, pays, and reads their own bookings.
    #[default]
    Fan,
    /// `"role": "organiser"`: creates concerts, schedules and seat maps, and runs their queues.
    Organiser,
}

/// What the request said about identity: nothing, a valid token, or a bad one. Resolvers that
/// need a caller turn the last two into `UNAUTHENTICATED`.
#[derive(Debug, Clone)]
pub enum Identity {
    Anonymous,
    Authenticated(Viewer),
    Invalid(String),
}

impl Identity {
    pub fn viewer(&self) -> Result<Viewer, AppError> {
        match self {
            Self::Authenticated(viewer) => Ok(*viewer),
            Self::Anonymous => Err(AppError::Unauthenticated(
                "an `Authorization: Bearer <token>` header is required".into(),
            )),
            Self::Invalid(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    /// Absent for fans (every token issued before roles existed is a fan's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

/// Verifies (and, for tests, demos and load scripts, issues) access tokens.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl Authenticator {
    pub fn new(config: &Config) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        Self {
            decoding: DecodingKey::from_secret(config.jwt_secret.expose_secret().as_bytes()),
            encoding: EncodingKey::from_secret(config.jwt_secret.expose_secret().as_bytes()),
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        }
    }

    /// Reads an `Authorization` header value (or the same entry of a websocket
    /// `connection_init` payload).
    pub fn identify(&self, authorization: Option<&str>) -> Identity {
        let Some(value) = authorization else {
            return Identity::Anonymous;
        };
        let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
            return Identity::Invalid("the Authorization header must be `Bearer <token>`".into());
        };
        match self.verify(token) {
            Ok(viewer) => Identity::Authenticated(viewer),
            Err(reason) => Identity::Invalid(reason),
        }
    }

    fn verify(&self, token: &str) -> Result<Viewer, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| why_invalid(err.kind()))?;
        let role = match data.claims.role.as_deref() {
            None | Some("fan") => Role::Fan,
            Some("organiser") => Role::Organiser,
            Some(_) => return Err("the access token's `role` is not one we know".into()),
        };
        match data.claims.sub.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Viewer {
                user_id: UserId(id),
                role,
            }),
            _ => Err("the access token's `sub` is not a user id".into()),
        }
    }

    /// Signs a fan's token for `user_id`, valid for `ttl_seconds`.
    pub fn issue(&self, user_id: UserId, ttl_seconds: i64) -> String {
        self.issue_with_role(user_id, Role::Fan, ttl_seconds)
    }

    /// Signs a token for `user_id` with `role`, valid for `ttl_seconds`.
    pub fn issue_with_role(&self, user_id: UserId, role: Role, ttl_seconds: i64) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_seconds,
            iat: now,
            role: match role {
                Role::Fan => None,
                Role::Organiser => Some("organiser".into()),
            },
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }
}

/// Why a token was refused, in our words: the library's own text (base64 and JSON decoder
/// messages) means nothing to a client and tells an attacker which parser it hit.
fn why_invalid(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "the access token has expired".into(),
        ErrorKind::ImmatureSignature => "the access token is not valid yet".into(),
        ErrorKind::InvalidSignature => "the access token's signature does not match".into(),
        ErrorKind::InvalidIssuer => "the access token was issued by someone else".into(),
        ErrorKind::InvalidAudience => "the access token is meant for another service".into(),
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the access token has no `{claim}` claim")
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => "the access token must be signed with HS256".into(),
        _ => "the access token is malformed: expected a signed JWT".into(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator::new(&Config::try_parse_from(["cr"]).expect("defaults parse"))
    }

    fn claims(role: Option<&str>) -> Claims {
        let now = Utc::now().timestamp();
        let config = Config::try_parse_from(["cr"]).expect("defaults parse");
        Claims {
            sub: "7".into(),
            iss: config.jwt_issuer,
            aud: config.jwt_audience,
            exp: now + 60,
            iat: now,
            role: role.map(str::to_owned),
        }
    }

    fn signed(claims: &Claims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &authenticator().encoding,
        )
        .expect("signs")
    }

    #[test]
    fn the_role_claim_makes_an_organiser_and_its_absence_a_fan() {
        let auth = authenticator();
        let organiser = auth.issue_with_role(UserId(7), Role::Organiser, 60);
        assert_eq!(
            auth.verify(&organiser),
            Ok(Viewer {
                user_id: UserId(7),
                role: Role::Organiser
            })
        );
        assert_eq!(
            auth.verify(&auth.issue(UserId(7), 60)),
            Ok(Viewer::fan(UserId(7)))
        );
        assert_eq!(
            auth.verify(&signed(&claims(Some("fan")))),
            Ok(Viewer::fan(UserId(7)))
        );
        assert!(auth.verify(&signed(&claims(Some("admin")))).is_err());
        assert!(Viewer::fan(UserId(7)).organiser().is_err());
        assert!(auth.verify(&organiser).unwrap().organiser().is_ok());
    }
}
