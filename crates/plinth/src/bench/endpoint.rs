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
                    .route("/noop", post(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], "null") }));
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(listener, app).await;
                }
            });
        })
        .map_err(|e| format!("no-op endpoint: {e}"))?;
    Ok(addr)
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
}
