//! Generates the wire types from `proto/` with protox (a pure-Rust protobuf compiler), so the
//! build needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let files = [
        "peerchat/v1/common.proto",
        "peerchat/v1/handshake.proto",
        "peerchat/v1/auth.proto",
        "peerchat/v1/friends.proto",
        "peerchat/v1/presence.proto",
        "peerchat/v1/server.proto",
        "peerchat/v1/peer.proto",
        "peerchat/v1/traversal.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, [&root])?;
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
