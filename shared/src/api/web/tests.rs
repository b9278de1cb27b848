use super::*;
use crate::api::tests::local_state;
use axum::body::to_bytes;
use http::Request;
use tower::ServiceExt;

/// The console's size budget: every file of `web/`, as shipped.
const BUDGET_RAW_BYTES: usize = 96 * 1024;
/// The same, gzip-compressed (what a browser downloads).
const BUDGET_GZIP_BYTES: usize = 28 * 1024;

async fn get(state: &AppState, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    crate::api::router(state.clone(), crate::api::RouteSet::Requests)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(r: Response) -> String {
    String::from_utf8(to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

#[test]
fn the_console_stays_within_its_size_budget() {
    let raw: usize = ASSETS.iter().map(|a| a.body.len()).sum();
    let gzip: usize = ASSETS.iter().map(|a| a.gzip.len()).sum();
    eprintln!(
        "web console: {} files, {raw} bytes raw, {gzip} bytes gzip",
        ASSETS.len()
    );
    assert!(raw <= BUDGET_RAW_BYTES, "{raw} bytes raw");
    assert!(gzip <= BUDGET_GZIP_BYTES, "{gzip} bytes gzip");
    assert!(ASSETS.iter().any(|a| a.path == "app.js"));
    assert!(ASSETS.iter().any(|a| a.path == "api.js"));
}

#[test]
fn no_file_carries_inline_script_or_style() {
    let handler = regex::Regex::new(r"\son[a-z]+\s*=").unwrap();
    for a in ASSETS.iter().filter(|a| a.path.ends_with(".html")) {
        let html = String::from_utf8_lossy(a.body);
        assert!(!html.contains("style="), "{}: inline style", a.path);
        assert!(!handler.is_match(&html), "{}: inline handler", a.path);
        for script in html.split("<script").skip(1) {
            assert!(script.contains("src="), "{}: inline script", a.path);
        }
    }
    for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        let js = String::from_utf8_lossy(a.body);
        // INVARIANT: no HTML strings (Trusted Types would refuse them anyway).
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "{} uses {sink}", a.path);
        }
        // No globals: modules talk through imports.
        assert!(!js.contains("window."), "{} uses window", a.path);
        if a.path != "api.js" {
            assert!(
                !js.contains("'/requests"),
                "{}: API calls belong in api.js",
                a.path
            );
        }
    }
}

#[tokio::test]
async fn assets_are_immutable_under_the_bundle_path_and_gzip_when_accepted() {
    let f = local_state();
    let path = format!("{}/app.js", assets_base());
    let r = get(&f.state, &path, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], IMMUTABLE);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
    let plain = text(r).await;
    assert!(plain.contains("import"));

    let r = get(&f.state, &path, &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
    let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
    assert!(body.len() < plain.len());
    assert_eq!(&body[..2], &[0x1f, 0x8b]);

    let r = get(&f.state, &path, &[("accept-encoding", "gzip;q=0")]).await;
    assert!(r.headers().get(header::CONTENT_ENCODING).is_none());

    // Another version's path, the shell template and unknown files are 404s.
    for bad in [
        "/ui/assets/0000000000000000/app.js".to_owned(),
        format!("{}/index.html", assets_base()),
        format!("{}/../Cargo.toml", assets_base()),
        format!("{}/nope.js", assets_base()),
    ] {
        let r = get(&f.state, &bad, &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}

#[tokio::test]
async fn pages_get_the_shell_with_a_strict_policy_and_revalidation() {
    let f = local_state();
    for page in [
        "/ui/",
        "/ui/inbox",
        "/ui/requests/new",
        "/ui/requests/01J00000000000000000000000",
        "/ui/callback",
        "/ui/signed-out",
    ] {
        let r = get(&f.state, page, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let h = r.headers().clone();
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        let html = text(r).await;
        assert!(html.contains(&format!("{}/app.js", assets_base())));
        assert!(!html.contains("{{"), "unfilled placeholder");

        let etag = h[header::ETAG].to_str().unwrap();
        let r = get(&f.state, page, &[("if-none-match", etag)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{page}");
    }
    let r = get(&f.state, "/ui/nowhere", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(text(r).await.contains("<main"));
    let r = get(&f.state, "/ui", &[]).await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()[header::LOCATION], "/ui/");
}

#[test]
fn sign_in_settings_reach_the_page_escaped_and_the_issuer_is_allowed_to_connect() {
    let settings = ConsoleSettings {
        issuer: Some("https://idp.example.com/oauth2/default".into()),
        client_id: Some("client\"<x>".into()),
        connect_origins: vec!["https://pool.auth.eu-west-1.amazoncognito.com".into()],
        ..ConsoleSettings::default()
    };
    let web = WebConsole::from_settings(&settings);
    let shell = &web.inner.shell;
    assert!(shell.contains(
        "<meta name=\"tollgate-discovery\" content=\"https://idp.example.com/oauth2/default/.well-known/openid-configuration\">"
    ));
    assert!(shell.contains("content=\"client&quot;&lt;x&gt;\""));
    let csp = web.csp().to_str().unwrap();
    assert!(csp.contains(
        "connect-src 'self' https://idp.example.com https://pool.auth.eu-west-1.amazoncognito.com;"
    ));

    let web = WebConsole::from_settings(&ConsoleSettings::default());
    assert!(
        web.inner
            .shell
            .contains("<meta name=\"tollgate-sign-in\" content=\"none\">")
    );
    assert!(web.csp().to_str().unwrap().contains("connect-src 'self';"));
}
