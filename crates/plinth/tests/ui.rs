//! The web dashboard in a real browser: Debian's chromium, driven through chromedriver, against
//! a real `plinth serve`. Without chromium the tests skip, saying so, except under `CI=true`,
//! where they must run. `PLINTH_SCREENSHOTS=docs/images` also writes the README's pictures.

#[path = "ui/access.rs"]
mod access;
#[path = "ui/browser.rs"]
mod browser;
#[allow(dead_code)]
#[path = "cli/harness.rs"]
mod harness;
#[path = "ui/pages.rs"]
mod pages;
