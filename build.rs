//! Generates the gRPC code of proto/webhooks/v1 with tonic-prost-build, using the protoc
//! binary vendored by protoc-bin-vendored (a fresh machine needs nothing but cargo), and
//! writes the file descriptor set that server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("webhooks_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                std::path::PathBuf::from("proto/webhooks/v1/webhooks.proto"),
                std::path::PathBuf::from("proto/webhooks/v1/admin.proto"),
                std::path::PathBuf::from("proto/webhooks/v1/event_types.proto"),
            ],
            &[
                std::path::PathBuf::from("proto"),
                protoc_bin_vendored::include_path()?,
            ],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
