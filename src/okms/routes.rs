//! Every OKMS route, parsed from the request head, with the access it declares to the pipeline:
//! the README's operation-to-capability table, as code. Each OKMS operation needs the capability
//! Vault would need for the same change, on the Vault path of the domain's mount.

use actix_web::HttpRequest;

use super::body::{self, State};
use super::error::{OkmsError, OkmsResult};
use super::path::{self, Target};
use crate::engine::model::Mount;
use crate::engine::path::SecretPath;
use crate::pipeline::{Access, Check};
use crate::policy::Capabilities as Cap;

/// An OKMS operation on one domain.
#[derive(Debug)]
pub enum Route {
    /// `GET /v2/secret`
    List,
    /// `POST /v2/secret` (the path is in the body)
    Create,
    /// `GET /v2/secret/{path}` (`includeData` asks for the data too)
    Get {
        path: SecretPath,
        include_data: bool,
    },
    /// `PUT /v2/secret/{path}`
    Update(SecretPath),
    /// `DELETE /v2/secret/{path}`
    Delete(SecretPath),
    /// `GET /v2/secret/{path}/version`
    ListVersions(SecretPath),
    /// `POST|PUT /v2/secret/{path}/version`
    CreateVersion(SecretPath),
    /// `GET /v2/secret/{path}/version/{n}`
    GetVersion {
        path: SecretPath,
        version: u64,
        include_data: bool,
    },
    /// `PUT /v2/secret/{path}/version/{n}` (the target state is in the body)
    SetState(SecretPath, u64),
    /// `GET /v2/secretConfig`
    ConfigGet,
    /// `PUT /v2/secretConfig`
    ConfigPut,
}

fn include_data(query: &std::collections::BTreeMap<String, String>) -> OkmsResult<bool> {
    Ok(query
        .get("includeData")
        .map(|s| body::boolean("includeData", s))
        .transpose()?
        .unwrap_or(false))
}

/// The v2 route of `method` on `rest` (the raw path after `/api/{okmsId}/`, starting `v2/`).
pub fn parse_v2(
    req: &HttpRequest,
    rest: &str,
    query: &std::collections::BTreeMap<String, String>,
) -> OkmsResult<Option<Route>> {
    let method = req.method().as_str();
    if rest == "v2/secretConfig" || rest == "v2/secretConfig/" {
        return match method {
            "GET" => Ok(Some(Route::ConfigGet)),
            "PUT" => Ok(Some(Route::ConfigPut)),
            _ => Err(OkmsError::MethodNotAllowed("GET, PUT")),
        };
    }
    let Some(raw_rest) = rest.strip_prefix("v2/secret") else {
        return Ok(None);
    };
    if raw_rest.is_empty() || raw_rest == "/" {
        return match method {
            "GET" => Ok(Some(Route::List)),
            "POST" => Ok(Some(Route::Create)),
            _ => Err(OkmsError::MethodNotAllowed("GET, POST")),
        };
    }
    let Some(raw) = raw_rest.strip_prefix('/') else {
        return Ok(None);
    };
    let route = match path::split_target(raw) {
        Target::Secret(p) => {
            let p = path::secret_path(&p)?;
            match method {
                "GET" => Route::Get {
                    path: p,
                    include_data: include_data(query)?,
                },
                "PUT" => Route::Update(p),
                "DELETE" => Route::Delete(p),
                _ => return Err(OkmsError::MethodNotAllowed("GET, PUT, DELETE")),
            }
        }
        Target::Versions(p) => {
            let p = path::secret_path(&p)?;
            match method {
                "GET" => Route::ListVersions(p),
                // POST per the OpenAPI file; OVH's REST guide shows PUT, so take both.
                "POST" | "PUT" => Route::CreateVersion(p),
                _ => return Err(OkmsError::MethodNotAllowed("GET, POST, PUT")),
            }
        }
        Target::Version(p, n) => {
            let p = path::secret_path(&p)?;
            let n = body::version_number(&n)?;
            match method {
                "GET" => Route::GetVersion {
                    path: p,
                    version: n,
                    include_data: include_data(query)?,
                },
                "PUT" => Route::SetState(p, n),
                _ => return Err(OkmsError::MethodNotAllowed("GET, PUT")),
            }
        }
    };
    Ok(Some(route))
}

/// `cap` on `<mount>/<sub>`.
fn on(mount: &Mount, sub: &str, cap: Cap) -> Check {
    Check::caps(format!("{}{sub}", mount.path.as_str()), cap)
}

/// Reading a secret's metadata needs `read` on `metadata/<path>`; its data, `read` on
/// `data/<path>` as well.
fn read_checks(mount: &Mount, p: &SecretPath, include_data: bool) -> Vec<Check> {
    let mut c = vec![on(mount, &format!("metadata/{p}"), Cap::READ)];
    if include_data {
        c.push(on(mount, &format!("data/{p}"), Cap::READ));
    }
    c
}

/// What a route declares. `GET /v2/secret` is gated by `list` on `metadata/` and then shows only
/// the entries the caller could reach through the Vault API (see `secrets::list`).
pub fn access(mount: &Mount, route: &Route) -> Access {
    Access::Checks(match route {
        Route::List => vec![on(mount, "metadata/", Cap::LIST)],
        Route::Create | Route::Update(_) | Route::SetState(..) => return Access::AfterBody,
        Route::Get { path, include_data } => read_checks(mount, path, *include_data),
        Route::GetVersion {
            path, include_data, ..
        } => read_checks(mount, path, *include_data),
        Route::Delete(p) => vec![on(mount, &format!("metadata/{p}"), Cap::DELETE)],
        Route::ListVersions(p) => vec![on(mount, &format!("metadata/{p}"), Cap::READ)],
        Route::CreateVersion(p) => vec![on(mount, &format!("data/{p}"), Cap::UPDATE)],
        Route::ConfigGet => vec![on(mount, "config", Cap::READ)],
        Route::ConfigPut => vec![on(mount, "config", Cap::UPDATE)],
    })
}

/// The checks of the routes whose needs are in their body.
pub fn checks_after_body(mount: &Mount, route: &Route, raw: &[u8]) -> OkmsResult<Vec<Check>> {
    match route {
        Route::Create => {
            let req: body::PostSecret = body::parse(raw)?;
            let p = path::check(&req.path)?;
            let mut c = vec![on(mount, &format!("data/{p}"), Cap::CREATE)];
            if req.metadata.is_some() {
                c.push(on(mount, &format!("metadata/{p}"), Cap::CREATE));
            }
            Ok(c)
        }
        Route::Update(p) => {
            let req: body::PutSecret = body::parse(raw)?;
            let mut c = Vec::new();
            if req.metadata.is_some() {
                c.push(on(mount, &format!("metadata/{p}"), Cap::UPDATE));
            }
            if req.version.is_some() {
                c.push(on(mount, &format!("data/{p}"), Cap::UPDATE));
            }
            if c.is_empty() {
                // `{}` changes nothing and answers the secret's metadata: reading it needs what
                // reading it always needs (this route once answered any token).
                c.push(on(mount, &format!("metadata/{p}"), Cap::READ));
            }
            Ok(c)
        }
        Route::SetState(p, _) => {
            let req: body::PutVersion = body::parse(raw)?;
            // Each state change is the Vault operation it maps to: activate = undelete,
            // deactivate = soft delete, delete = destroy; each needs `update` on that path.
            let op = match req.state {
                State::Active => "undelete",
                State::Deactivated => "delete",
                State::Deleted => "destroy",
            };
            Ok(vec![on(mount, &format!("{op}/{p}"), Cap::UPDATE)])
        }
        // No other route is declared `AfterBody`: refuse rather than admit with no checks.
        _ => Err(OkmsError::Forbidden),
    }
}
