//! A real browser for the tests of web pages: Debian's Chromium, headless,
//! driven through chromedriver's W3C WebDriver protocol (a few JSON calls
//! over HTTP on a loopback port; `scripts/tools` installs both).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session; the driver stops when this is dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "Chromium and chromedriver (scripts/tools installs them)"
        );
        let port = crate::rabbitmq::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
        };
        let created = browser
            .call(
                "POST",
                "/session",
                json!({ "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=412,915"]
                    }
                }}}),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        browser
    }

    /// Opens `url`, as a click on an email's link would.
    pub async fn open(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        self.call("POST", &path, json!({ "url": url })).await;
    }

    /// The page's HTML as the browser has it.
    pub async fn source(&self) -> String {
        let path = format!("/session/{}/source", self.session);
        let value = self.call("GET", &path, Value::Null).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The text the page shows.
    pub async fn text(&self) -> String {
        let value = self.evaluate("return document.body.innerText").await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// What `script` returns, run in the page (as the test's, not the
    /// page's: a page's CSP does not stop it).
    pub async fn evaluate(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        self.call("POST", &path, json!({ "script": script, "args": [] }))
            .await
    }

    /// Makes the window `width` by `height` CSS pixels, as a phone's.
    pub async fn resize(&self, width: u32, height: u32) {
        let path = format!("/session/{}/window/rect", self.session);
        self.call("POST", &path, json!({ "width": width, "height": height }))
            .await;
    }

    /// Saves what the window shows as a PNG file at `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let url = format!("/session/{}/screenshot", self.session);
        let png = self.call("GET", &url, Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG from WebDriver");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Clicks the first element `selector` finds.
    pub async fn click(&self, selector: &str) {
        let element = self.element(selector).await;
        let path = format!("/session/{}/element/{element}/click", self.session);
        self.call("POST", &path, json!({})).await;
    }

    /// Types `keys` into the first element `selector` finds, as a keyboard
    /// would (WebDriver's codes for special keys: `\u{E007}` is Enter).
    pub async fn type_keys(&self, selector: &str, keys: &str) {
        let element = self.element(selector).await;
        let path = format!("/session/{}/element/{element}/value", self.session);
        self.call("POST", &path, json!({ "text": keys })).await;
    }

    /// The WebDriver reference of the first element `selector` finds.
    async fn element(&self, selector: &str) -> String {
        let path = format!("/session/{}/element", self.session);
        let found = self
            .call(
                "POST",
                &path,
                json!({ "using": "css selector", "value": selector }),
            )
            .await;
        found
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned()
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("chromedriver");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // The driver may keep the connection open: read the head, then
        // exactly the body it announces.
        let mut response = Vec::new();
        let mut chunk = [0; 8192];
        let head_end = loop {
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "chromedriver closed the connection");
            response.extend_from_slice(&chunk[..read]);
            if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while response.len() < head_end + length {
            let read = stream.read(&mut chunk).await.unwrap();
            if read == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..read]);
        }
        let body = String::from_utf8_lossy(&response[head_end..]).into_owned();
        let value: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("WebDriver {method} {path}: {body}"));
        value["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session (Chromium quits), then the driver.
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            use std::io::{Read, Write};
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n",
                self.session
            );
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
