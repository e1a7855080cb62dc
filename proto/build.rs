//! Compiles the .proto files in pure Rust (protox), so no protoc is needed,
//! and keeps the encoded descriptor set for server reflection.
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/ctnet/v1/ctnet.proto", "proto/ctnet/exec/v1/exec.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("ctnet_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // No generated `connect` constructors: they clash with the `Connect` RPC, and
    // every client builds its own Unix-socket channel anyway.
    tonic_prost_build::configure().build_transport(false).compile_fds(fds)?;
    Ok(())
}
