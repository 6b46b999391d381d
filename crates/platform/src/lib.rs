//! What every selfhelp service shares, so that each service reads the same way:
//! configuration, telemetry, gRPC server assembly, authentication, request
//! validation errors, storage, the CloudEvents bus over NATS JetStream, the
//! transactional outbox, the idempotent inbox and the consumer runner.

pub mod auth;
pub mod bad_request;
pub mod bus;
pub mod config;
pub mod consumer;
pub mod db;
pub mod email;
pub mod error;
pub mod grpc;
pub mod inbox;
pub mod metrics;
pub mod migrations;
pub mod operations;
pub mod otel;
pub mod outbox;
pub mod privacy;
pub mod rate_limit;
pub mod schema;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod supervise;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use shutdown::Shutdown;
