//! Compiles the .proto files in pure Rust (protox), so no protoc is needed,
//! and keeps the encoded descriptor set for server reflection.
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/ctnet/v1/ctnet.proto", "proto/ctnet/exec/v1/exec.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // Reflection serves the public API only: the executor API is internal.
    let public = protox::compile([files[0]], ["proto"])?;
    fs::write(out.join("ctnet_v1_descriptor.bin"), prost::Message::encode_to_vec(&public))?;
    let fds = protox::compile(files, ["proto"])?;
    // No generated `connect` constructors: they clash with the `Connect` RPC, and
    // every client builds its own Unix-socket channel anyway.
    tonic_prost_build::configure().build_transport(false).compile_fds(fds)?;
    Ok(())
}
