//! A no-op HTTP endpoint for the HTTP-handler round, on its own thread and runtime so it does
//! not share the load generator's thread.

use axum::Router;
use axum::routing::post;
use std::net::SocketAddr;

/// Starts the endpoint on a free loopback port; it answers `POST /noop` with JSON `null`.
pub(crate) fn start() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no-op endpoint: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("no-op endpoint: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("no-op endpoint: {e}"))?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("no-op endpoint: {e}"))?;
    std::thread::Builder::new()
        .name("bench-endpoint".into())
        .spawn(move || {
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/noop", post(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], "null") }))
                    .route("/steps5", post(|body| steps(body, 5)))
                    .route("/steps100", post(|body| steps(body, 100)));
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(listener, app).await;
                }
            });
        })
        .map_err(|e| format!("no-op endpoint: {e}"))?;
    Ok(addr)
}

/// A step function of `steps` no-op steps, speaking the step protocol: 206 with the next step
/// until the memo holds them all, then 200.
async fn steps(
    body: axum::body::Bytes,
    steps: usize,
) -> (axum::http::StatusCode, [(axum::http::HeaderName, &'static str); 1], String) {
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    let done =
        serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["steps"].as_object().map(serde_json::Map::len));
    match done {
        Some(n) if n < steps => {
            (axum::http::StatusCode::PARTIAL_CONTENT, json, format!(r#"{{"ops":[{{"op":"step","id":"s{n}","output":null}}]}}"#))
        }
        Some(_) => (axum::http::StatusCode::OK, json, "null".to_string()),
        None => (axum::http::StatusCode::BAD_REQUEST, json, r#"{"message":"not an envelope"}"#.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_endpoint_answers_null() {
        let addr = super::start().expect("start");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (status, body) = rt.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let resp = reqwest::Client::new().post(format!("http://{addr}/noop")).send().await.expect("request");
            (resp.status().as_u16(), resp.text().await.expect("body"))
        });
        assert_eq!((status, body.as_str()), (200, "null"));
    }

    #[test]
    fn the_step_endpoint_answers_five_steps_then_finishes() {
        let addr = super::start().expect("start");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let call = |body: &'static str| {
            rt.block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let resp = reqwest::Client::new().post(format!("http://{addr}/steps5")).body(body).send().await.expect("request");
                (resp.status().as_u16(), resp.text().await.expect("body"))
            })
        };
        let (status, body) = call(r#"{"steps": {"s0": {"output": null}}}"#);
        assert_eq!(status, 206);
        assert!(body.contains(r#""id":"s1""#), "{body}");
        let (status, _) = call(r#"{"steps": {"s0": {}, "s1": {}, "s2": {}, "s3": {}, "s4": {}}}"#);
        assert_eq!(status, 200);
        assert_eq!(call("nonsense").0, 400);
        let resp = rt.block_on(async {
            let body = r#"{"steps": {"s0": {}, "s1": {}, "s2": {}, "s3": {}, "s4": {}}}"#;
            reqwest::Client::new().post(format!("http://{addr}/steps100")).body(body).send().await.expect("request")
        });
        assert_eq!(resp.status().as_u16(), 206, "the long function goes on past five");
    }
}
