//! The key-connect widget: `widget.js` and the frame's assets (embedded in the binary from
//! `widget/`), the frame page the widget mounts, and the hosted `/connect` page for native
//! WebViews. The pages' headers depend on the tenant: `frame-ancestors` is its allowed origins,
//! and a `redirect_uri` is honoured only when its origin is one of them.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384};
use utoipa::IntoParams;

use crate::auth::tokens::RegistrationTokenHash;
use crate::domain::AllowedOrigin;
use crate::error::{ApiError, ErrorBody};
use crate::store::{Store, Tenant};

const PAGE_TEMPLATE: &str = include_str!("../../../widget/page.html");

/// The unversioned URLs may change with any Relay release, so browsers recheck them soon.
const SHORT_CACHE: &str = "public, max-age=300";
/// A URL whose `?v=` names the content hash never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A static file with its content hash (`?v=` and `ETag`) and its SRI digest.
pub struct Asset {
    body: &'static str,
    content_type: &'static str,
    version: String,
    integrity: String,
}

impl Asset {
    pub(crate) fn new(body: &'static str, content_type: &'static str) -> Self {
        let version = Sha256::digest(body.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect();
        let integrity =
            format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(body.as_bytes())));
        Self { body, content_type, version, integrity }
    }

    /// The content hash that `?v=` pins.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The Subresource Integrity value for a `<script integrity=…>`.
    pub fn integrity(&self) -> &str {
        &self.integrity
    }
}

pub struct Assets {
    pub widget: Asset,
    page: PageAssets,
}

pub fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| Assets {
        widget: Asset::new(include_str!("../../../widget/widget.js"), "text/javascript; charset=utf-8"),
        page: PageAssets::new(
            include_str!("../../../widget/app.js"),
            include_str!("../../../widget/app.css"),
            include_str!("../../../widget/strings.js"),
        ),
    })
}

/// A page's script, styles and strings, as the widget frame and the console each serve them
/// from `…/{asset}`: versioned by content hash, the page's HTML naming each version.
pub(crate) struct PageAssets {
    app_js: Asset,
    app_css: Asset,
    strings: Asset,
}

impl PageAssets {
    pub(crate) fn new(app_js: &'static str, app_css: &'static str, strings: &'static str) -> Self {
        Self {
            app_js: Asset::new(app_js, "text/javascript; charset=utf-8"),
            app_css: Asset::new(app_css, "text/css; charset=utf-8"),
            strings: Asset::new(strings, "text/javascript; charset=utf-8"),
        }
    }

    /// `html` with the assets' versions in place of `{{app_version}}`, `{{css_version}}` and
    /// `{{strings_version}}`.
    pub(crate) fn fill(&self, html: &str) -> String {
        html.replace("{{css_version}}", self.app_css.version())
            .replace("{{strings_version}}", self.strings.version())
            .replace("{{app_version}}", self.app_js.version())
    }

    /// `GET …/{asset}`: `app.js`, `app.css` or `strings.js`, for this site only; any other
    /// name is a 404.
    pub(crate) fn serve(
        &self,
        req: &HttpRequest,
        name: &str,
        requested: Option<&str>,
    ) -> Result<HttpResponse, ApiError> {
        let asset = match name {
            "app.js" => &self.app_js,
            "app.css" => &self.app_css,
            "strings.js" => &self.strings,
            _ => return Err(crate::error::for_bare_status(StatusCode::NOT_FOUND, "GET", req.path())),
        };
        let mut res = serve_asset(req, asset, requested);
        res.headers_mut().insert(
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        );
        Ok(res)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetQuery {
    /// The content hash (the `ETag`, also in `X-Relay-Widget-Version`): with the current one the
    /// answer is cacheable for a year.
    pub(crate) v: Option<String>,
}

/// `GET /widget.js`: short-cached and revalidated by `ETag`; `GET /widget.js?v=<hash>` (the
/// hash is the ETag, also in `X-Relay-Widget-Version`) is immutable.
#[utoipa::path(
    get,
    path = "/widget.js",
    tag = "widget",
    operation_id = "widgetJs",
    summary = "The embeddable widget",
    description = "`Relay.mount(selectorOrElement, {registrationToken, theme, accentColor, locale, onSuccess, onError})`. \
Short-cached and revalidated by `ETag`; with `?v=<hash>` immutable. Loadable cross-origin (with SRI: \
`X-Relay-Widget-Integrity`).",
    params(AssetQuery, ("If-None-Match" = Option<String>, Header, description = "A previous `ETag`.")),
    responses(
        (status = 200, description = "The script.", content_type = "text/javascript; charset=utf-8", body = String,
         headers(
            ("etag" = String, description = "The content hash, quoted."),
            ("cache-control" = String, description = "`public, max-age=300`, or a year and `immutable` with the current `?v=`."),
            ("x-relay-widget-version" = String, description = "The content hash, for `?v=`."),
            ("x-relay-widget-integrity" = String, description = "The SRI digest (`sha384-…`) for `integrity=`."),
         )),
        (status = 304, description = "Not modified (`If-None-Match` matched)."),
    )
)]
pub async fn widget_js(req: HttpRequest, query: web::Query<AssetQuery>) -> HttpResponse {
    let asset = &assets().widget;
    let mut res = serve_asset(&req, asset, query.v.as_deref());
    let headers = res.headers_mut();
    // Tenants' pages load it cross-origin, with `crossorigin` when they pin it with SRI.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    if let Ok(v) = HeaderValue::from_str(asset.version()) {
        headers.insert(header::HeaderName::from_static("x-relay-widget-version"), v);
    }
    if let Ok(v) = HeaderValue::from_str(asset.integrity()) {
        headers.insert(header::HeaderName::from_static("x-relay-widget-integrity"), v);
    }
    res
}

/// `GET /widget/{asset}`: the frame's script, styles and strings.
#[utoipa::path(
    get,
    path = "/widget/{asset}",
    tag = "widget",
    operation_id = "widgetAsset",
    summary = "The widget frame's assets",
    params(
        ("asset" = inline(WidgetAssetName), Path, description = "The asset's file name."),
        AssetQuery,
        ("If-None-Match" = Option<String>, Header, description = "A previous `ETag`."),
    ),
    responses(
        (status = 200, description = "The asset (`text/javascript` or `text/css`).", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
        ), headers(("etag" = String, description = "The content hash, quoted."))),
        (status = 304, description = "Not modified (`If-None-Match` matched)."),
        (status = 404, description = "No such asset (`unknown_route`).", body = ErrorBody),
    )
)]
pub async fn asset(
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<AssetQuery>,
) -> Result<HttpResponse, ApiError> {
    assets().page.serve(&req, &name, query.v.as_deref())
}

pub(crate) fn serve_asset(req: &HttpRequest, asset: &Asset, requested: Option<&str>) -> HttpResponse {
    let etag = format!("\"{}\"", asset.version);
    let cache = if requested == Some(asset.version.as_str()) { IMMUTABLE } else { SHORT_CACHE };
    let fresh = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(&etag))
    });
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        res.finish()
    } else {
        res.content_type(asset.content_type).body(asset.body)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FrameQuery {
    /// The app's public app id.
    #[param(example = "app_8Jk2…")]
    app: Option<String>,
    /// The origin of the page that mounts the widget; must be one of the app's allowed origins.
    #[param(example = "https://app.example.com")]
    origin: Option<String>,
    /// `light` (default), `dark` or `auto`.
    theme: Option<String>,
    /// `en` (default) or `ko`.
    locale: Option<String>,
}

/// The frame's asset files.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: `asset` matches the names
enum WidgetAssetName {
    #[schema(rename = "app.js")]
    AppJs,
    #[schema(rename = "app.css")]
    AppCss,
    #[schema(rename = "strings.js")]
    StringsJs,
}

/// `GET /widget/frame?app=app_…&origin=…`: the key form, framed by the widget. The app id is
/// public; the registration token never appears here (it arrives by postMessage). The page
/// may be framed only by the tenant's allowed origins, and talks only to the `origin` the
/// widget named when that is one of them.
#[utoipa::path(
    get,
    path = "/widget/frame",
    tag = "widget",
    operation_id = "widgetFrame",
    summary = "The widget's frame page",
    description = "The key form the widget frames. The registration token never appears in its URL (it arrives by \
`postMessage`). Framable only by the app's allowed origins (`Content-Security-Policy: frame-ancestors`); an unknown \
app or origin renders an error page.",
    params(FrameQuery),
    responses(
        (status = 200, description = "The HTML page.", content_type = "text/html; charset=utf-8", body = String,
         headers(("content-security-policy" = String, description = "`frame-ancestors` lists the app's allowed origins."))),
        (status = 400, description = "The query string is not valid (`invalid_query`).", body = ErrorBody),
    )
)]
pub async fn frame(store: web::Data<dyn Store>, query: web::Query<FrameQuery>) -> Result<HttpResponse, ApiError> {
    let tenant = match query.app.as_deref().filter(|a| crate::tenants::is_well_formed_app_id(a)) {
        Some(app) => store.find_tenant_by_app_id(app).await?,
        None => None,
    };
    let origins = match &tenant {
        Some(t) => allowed_origins(&**store, t.id).await?,
        None => Vec::new(),
    };
    let parent = query.origin.as_deref().filter(|o| origins.iter().any(|a| a == o));
    let error = match (&tenant, parent) {
        (None, _) => Some("app_unknown"),
        (Some(_), None) => Some("origin_not_allowed"),
        (Some(_), Some(_)) => None,
    };
    let mut data = vec![
        ("app-name", tenant.as_ref().map(|t| t.name.clone()).unwrap_or_default()),
        ("app-id", tenant.as_ref().map(|t| t.app_id.clone()).unwrap_or_default()),
    ];
    if let Some(p) = parent {
        data.push(("parent-origin", p.to_owned()));
    }
    if let Some(e) = error {
        data.push(("error", e.to_owned()));
    }
    let page = Page { mode: "frame", assets: "", theme: query.theme.as_deref(), locale: query.locale.as_deref(), data };
    Ok(page.respond(&origins))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectQuery {
    /// The registration token (`rrt-…`); the page removes it from the address bar on load.
    #[param(example = "rrt-3kTq9…")]
    token: Option<String>,
    /// Where to send the result; followed only when its origin is one of the app's allowed
    /// origins.
    #[param(example = "https://app.example.com/connected")]
    redirect_uri: Option<String>,
    /// Passed back with the redirect (up to 512 characters).
    state: Option<String>,
    /// `light` (default), `dark` or `auto`.
    theme: Option<String>,
    /// `en` (default) or `ko`.
    locale: Option<String>,
}

/// `GET /connect?token=rrt-…[&redirect_uri=…&state=…&theme=…&locale=…&accent=…]`: the same
/// form full-screen, for native apps' WebViews. The page removes the token from the address bar
/// on load. The result goes to the native bridges, the parent window (allowed origins only),
/// and `redirect_uri` when its origin is one of the tenant's allowed origins; any other
/// `redirect_uri` is refused on the page and never followed.
#[utoipa::path(
    get,
    path = "/connect",
    tag = "widget",
    operation_id = "connectPage",
    summary = "The hosted connect page",
    description = "The widget full-screen, for native apps' WebViews. The result goes to \
`window.ReactNativeWebView.postMessage`, `window.webkit.messageHandlers.relay.postMessage`, \
`window.parent.postMessage` (allowed origins only), and `redirect_uri` when its origin is allowed.",
    params(ConnectQuery),
    responses(
        (status = 200, description = "The HTML page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "The query string is not valid (`invalid_query`).", body = ErrorBody),
    )
)]
pub async fn connect_page(
    store: web::Data<dyn Store>,
    query: web::Query<ConnectQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let tenant = match query.token.as_deref() {
        Some(token) => tenant_for_token(&**store, token).await?,
        None => None,
    };
    let origins = match &tenant {
        Some(t) => allowed_origins(&**store, t.id).await?,
        None => Vec::new(),
    };
    let mut data = vec![("app-name", tenant.as_ref().map(|t| t.name.clone()).unwrap_or_default())];
    if !origins.is_empty() {
        data.push(("allowed-origins", origins.join(" ")));
    }
    if let Some(uri) = query.redirect_uri.as_deref() {
        match allowed_redirect(uri, &origins) {
            Some(uri) => {
                data.push(("redirect-uri", uri));
                if let Some(s) = query.state.as_deref().filter(|s| s.len() <= 512) {
                    data.push(("state", s.to_owned()));
                }
            }
            None => data.push(("error", "redirect_uri_not_allowed".to_owned())),
        }
    }
    let page =
        Page { mode: "page", assets: "widget/", theme: query.theme.as_deref(), locale: query.locale.as_deref(), data };
    Ok(page.respond(&origins))
}

/// The tenant a registration token belongs to, used or not (a spent token's page still needs
/// the tenant's origins to report back).
async fn tenant_for_token(store: &dyn Store, raw: &str) -> Result<Option<Tenant>, ApiError> {
    let Some(hash) = RegistrationTokenHash::parse(raw) else { return Ok(None) };
    let Some(info) = store.find_registration_token(&hash.0).await? else { return Ok(None) };
    Ok(store.get_tenant(info.tenant_id).await?)
}

/// The tenant's allowed origins that are well-formed origins (so each is a valid CSP source).
async fn allowed_origins(store: &dyn Store, tenant_id: uuid::Uuid) -> Result<Vec<String>, ApiError> {
    let settings = store.get_tenant_settings(tenant_id).await?.unwrap_or_default();
    Ok(settings
        .allowed_origins
        .into_iter()
        .filter(|o| AllowedOrigin::parse(o).is_ok_and(|p| p.as_str() == o))
        .collect())
}

/// `redirect_uri`, if it is an absolute http(s) URL without credentials whose origin is one of
/// `origins`.
pub fn allowed_redirect(uri: &str, origins: &[String]) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    origins.contains(&origin).then(|| url.to_string())
}

struct Page<'a> {
    mode: &'static str,
    /// Where the assets are, relative to the page.
    assets: &'static str,
    theme: Option<&'a str>,
    locale: Option<&'a str>,
    data: Vec<(&'static str, String)>,
}

impl Page<'_> {
    fn respond(&self, frame_ancestors: &[String]) -> HttpResponse {
        let lang = if self.locale == Some("ko") { "ko" } else { "en" };
        let theme = self.theme.filter(|t| matches!(*t, "dark" | "auto")).unwrap_or("light");
        let data: String =
            self.data.iter().map(|(name, value)| format!(" data-{name}=\"{}\"", escape_attr(value))).collect();
        let html = PAGE_TEMPLATE
            .replace("{{lang}}", lang)
            .replace("{{mode}}", self.mode)
            .replace("{{theme}}", theme)
            .replace("{{data}}", &data)
            .replace("{{title}}", if lang == "ko" { "API 키 연결 · Relay" } else { "Connect your API key · Relay" })
            .replace("{{assets}}", self.assets);
        let html = assets().page.fill(&html);
        let mut res = HttpResponse::Ok();
        res.content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, content_security_policy(frame_ancestors)))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"));
        if frame_ancestors.is_empty() {
            // For browsers older than CSP frame-ancestors.
            res.insert_header((header::X_FRAME_OPTIONS, "DENY"));
        }
        res.body(html)
    }
}

/// No inline script or style, nothing from elsewhere; the form can only be sent by our script
/// (`form-action 'none'`: if that script failed, a native submit could not put the key in a URL).
pub fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors = if frame_ancestors.is_empty() { "'none'".to_owned() } else { frame_ancestors.join(" ") };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'; frame-src 'none'; worker-src 'none'; object-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors {ancestors}"
    )
}

fn escape_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_only_to_allowed_origins() {
        let origins = vec!["https://app.example.com".to_owned(), "http://localhost:5173".to_owned()];
        let ok = |u: &str| allowed_redirect(u, &origins);
        assert_eq!(ok("https://app.example.com/done?x=1"), Some("https://app.example.com/done?x=1".into()));
        assert_eq!(ok("https://APP.example.com:443/done"), Some("https://app.example.com/done".into()));
        assert_eq!(ok("http://localhost:5173/cb"), Some("http://localhost:5173/cb".into()));
        for bad in [
            "https://app.example.com.evil.com/",
            "https://evil.com/?https://app.example.com",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://user@app.example.com/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "//app.example.com/",
            "/relative",
            "myapp://callback",
            "",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
        assert_eq!(allowed_redirect("https://app.example.com/", &[]), None);
    }

    #[test]
    fn csp_has_no_inline_and_lists_ancestors() {
        let csp = content_security_policy(&["https://a.example".into(), "http://localhost:3000".into()]);
        assert!(csp.contains("frame-ancestors https://a.example http://localhost:3000"));
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
        assert!(content_security_policy(&[]).ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape_attr(r#"a"><script>'&"#), "a&quot;&gt;&lt;script&gt;&#39;&amp;");
    }
}
