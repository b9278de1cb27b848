//! Embeds the web console (`web/` at the repository root) in the crate:
//! every file's bytes, a gzip copy, its content type, and one hash of the
//! whole bundle, written to `$OUT_DIR/web_assets.rs` for `api::web`.
//! Assets are then served under `/ui/assets/<bundle hash>/...`, so they can
//! be cached forever: any change to any file changes the path.

// Cargo reads its directives from a build script's stdout.
#![allow(clippy::print_stdout)]

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("..").join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed={}", web.display());

    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    files.sort();

    let mut bundle = Sha256::new();
    let mut entries = String::new();
    for (rel, path) in &files {
        let body =
            std::fs::read(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        let Some(content_type) = content_type(rel) else {
            fail(&format!(
                "web/{rel}: unknown file type; add its extension to shared/build.rs"
            ));
        };
        bundle.update(rel.as_bytes());
        bundle.update([0]);
        bundle.update(Sha256::digest(&body));
        let gz_path = out.join(format!("web-{}.gz", rel.replace('/', "_")));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&body)
            .unwrap_or_else(|e| fail(&format!("gzip {rel}: {e}")));
        let gz = gz
            .finish()
            .unwrap_or_else(|e| fail(&format!("gzip {rel}: {e}")));
        std::fs::write(&gz_path, gz)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", gz_path.display())));
        entries.push_str(&format!(
            "    Asset {{ path: {rel:?}, content_type: {content_type:?}, body: include_bytes!({:?}), gzip: include_bytes!({:?}) }},\n",
            path.display().to_string(),
            gz_path.display().to_string(),
        ));
    }
    let hash = hex(&bundle.finalize());
    let code = format!(
        "/// Hash of every file in `web/`: the assets' path segment.\npub const BUNDLE: &str = {:?};\n\n/// Every file in `web/`, sorted by path.\npub static ASSETS: &[Asset] = &[\n{entries}];\n",
        &hash[..16]
    );
    let target = out.join("web_assets.rs");
    std::fs::write(&target, code).unwrap_or_else(|e| fail(&format!("{}: {e}", target.display())));
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        fail(&format!("cannot read {}", dir.display()));
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            files.push((rel, path));
        }
    }
}

fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail(message: &str) -> ! {
    eprintln!("build.rs (web console): {message}");
    std::process::exit(1)
}
