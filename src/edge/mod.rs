//! The gateway listener's own protection, before and around the handlers:
//! connection caps and slow-header handling (`conn`), idle connections
//! (`idle`), overload shedding and
//! per-key concurrency (`load`), and header hygiene (`hygiene`). Limits come
//! from `config::EdgeConfig`, read at start.

pub mod conn;
pub mod hygiene;
pub mod idle;
pub mod load;

use crate::config::EdgeConfig;

/// The edge state held in `AppState`.
pub struct Edge {
    pub config: EdgeConfig,
    pub conns: std::sync::Arc<conn::ConnGate>,
    pub load: load::Load,
}

impl Edge {
    pub fn new(config: &EdgeConfig) -> Edge {
        Edge {
            conns: std::sync::Arc::new(conn::ConnGate::new(
                config.max_connections,
                config.max_connections_per_ip,
            )),
            load: load::Load::new(config.max_in_flight),
            config: config.clone(),
        }
    }
}
