//! `webhooks.v1.AdminService`: account tokens, for holders of the admin token.

use tonic::{Request, Response, Status};

use super::pb;
use super::pb::admin_service_server::AdminService;
use super::status::to_status;
use crate::core::Service;
use crate::ids::{self, Kind};

/// The AdminService implementation.
pub struct AdminApi {
    service: Service,
}

impl AdminApi {
    /// Serves `service`.
    pub fn new(service: Service) -> AdminApi {
        AdminApi { service }
    }

    fn require_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.service
            .authenticate_admin(super::authorization(request))
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_api_token(
        &self,
        request: Request<pb::CreateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        self.require_admin(&request)?;
        let r = request.get_ref();
        let (stored, token) = self
            .service
            .create_token(&r.account_id, &r.scopes)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ApiToken {
            id: ids::format(Kind::Token, stored.id),
            token,
            account_id: stored.account_id,
            scopes: stored
                .scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        }))
    }

    async fn revoke_api_token(
        &self,
        request: Request<pb::RevokeApiTokenRequest>,
    ) -> Result<Response<()>, Status> {
        self.require_admin(&request)?;
        self.service
            .revoke_token(&request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }
}
