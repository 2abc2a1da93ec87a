//! The tonic server on the gRPC listener: WebhookService, AdminService, server reflection
//! (v1 and v1alpha) and grpc.health.v1, which needs no token and says SERVING once the
//! store and worker are up, and NOT_SERVING while the store is lost (for the server as a
//! whole, "", and for both services). Reflection also serves the google.rpc error-detail messages
//! (BadRequest, ResourceInfo, ErrorInfo, ...) that error statuses carry, so grpcurl decodes
//! them.

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::admin::AdminApi;
use super::pb::FILE_DESCRIPTOR_SET;
use super::pb::admin_service_server::AdminServiceServer;
use super::pb::webhook_service_server::WebhookServiceServer;
use super::raw_first::{MAX_REQUEST_BYTES, RawFirst};
use super::webhooks::WebhookApi;
use crate::core::Service;
use crate::net;

const WEBHOOK_SERVICE: &str = <WebhookServiceServer<WebhookApi> as NamedService>::NAME;
const ADMIN_SERVICE: &str = <AdminServiceServer<AdminApi> as NamedService>::NAME;

/// Sets the health of the server and of its services to `serving`.
async fn set_health(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in ["", WEBHOOK_SERVICE, ADMIN_SERVICE] {
        reporter.set_service_status(service, status).await;
    }
}

/// Follows whether the store answers with the health of the server and its services,
/// until `shutdown`.
async fn report_health(
    reporter: HealthReporter,
    mut serving: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = serving.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        let now = *serving.borrow_and_update();
        set_health(&reporter, now).await;
    }
}

/// Serves gRPC on `listener` until `shutdown`, or until the listener breaks (an error).
pub async fn serve(
    service: Service,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let mut serving = service.watch_serving();
    let now = *serving.borrow_and_update();
    set_health(&health_reporter, now).await;
    tokio::spawn(report_health(health_reporter, serving, shutdown.clone()));
    // The descriptors of the error details are tonic-types' own: the messages it encodes.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    // tonic's own `tcp_nodelay` only applies to listeners it binds: `net` sets it.
    let (acceptor, broken) = net::acceptor(listener);
    let incoming = futures::stream::unfold(acceptor, |mut acceptor| async move {
        let (stream, _) = acceptor.accept().await;
        Some((Ok::<_, std::io::Error>(stream), acceptor))
    });
    let serving = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(RawFirst::new(
            WebhookServiceServer::new(WebhookApi::new(service.clone(), shutdown.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            service.clone(),
        ))
        .add_service(AdminServiceServer::new(AdminApi::new(service)))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned());
    tokio::select! {
        served = serving => Ok(served?),
        error = broken.wait() => Err(error.into()),
    }
}
