//! Assisters Gateway: a self-hosted, OpenAI-compatible LLM API gateway.
//!
//! The engine is this library; `src/main.rs` is a thin binary over it and
//! `src-tauri/` embeds it in the desktop app. See ARCHITECTURE.md for the map.

pub mod access;
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod edge;
pub mod error;
pub mod fsutil;
pub mod keys;
pub mod limits;
pub mod logs;
pub mod proxy;
pub mod safety;
pub mod server;
pub mod settings;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod timefmt;
pub mod tls;
pub mod tokens;
pub mod validate;

pub use app::{AppState, Embedding};
pub use config::Config;
pub use server::Server;
