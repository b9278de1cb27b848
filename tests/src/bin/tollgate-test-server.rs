//! The local broker for the end-to-end tests: exactly what `tollgate serve`
//! runs (`tollgate::api::local::serve`), with every option from the
//! environment (`TOLLGATE_ADDR`, `TOLLGATE_TABLE`, `TOLLGATE_DEV_SECRET`, ...),
//! so the tests do not depend on the CLI's flags. It exits when its
//! standard input closes, so a test process that ends never leaves it behind.

use std::process::ExitCode;
use tollgate::api::local::{LocalOptions, serve};

#[tokio::main]
async fn main() -> ExitCode {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    tollgate::api::lambda::init_tracing();
    let result = match LocalOptions::from_env() {
        Ok(options) => serve(options).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-test-server: {e}");
            ExitCode::FAILURE
        }
    }
}
