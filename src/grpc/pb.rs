//! Generated protobuf/gRPC code of package `webhooks.v1` and its file descriptor set
//! (for server reflection). Nothing hand-written lives here.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("webhooks.v1");

/// Encoded `FileDescriptorSet` of proto/webhooks/v1, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("webhooks_v1_descriptor");
