//! Generates the Rust types of the on-disk encodings (proto/stead/journal.proto)
//! so that core_rs and the Python tools decode the same bytes from one schema.
fn main() {
    println!("cargo:rerun-if-changed=../proto/stead/journal.proto");
    if std::env::var_os("PROTOC").is_none() && std::path::Path::new("/usr/bin/protoc").exists() {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("PROTOC", "/usr/bin/protoc") };
    }
    prost_build::Config::new()
        .compile_protos(&["../proto/stead/journal.proto"], &["../proto"])
        .expect("compiling proto/stead/journal.proto");
}
