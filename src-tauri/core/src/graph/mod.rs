//! The source: Microsoft Graph with app-only access.
//!
//! [`auth`] gets and renews tokens, [`pacer`] is the only place that waits or retries,
//! [`client`] sends requests through a mailbox's pacer, [`paging`] follows `@odata.nextLink`,
//! [`types`] holds the wire types, and [`users`], [`mail`], [`calendar`], [`contacts`] and
//! [`todo`](mod@todo) are the calls the engine makes.

pub mod auth;
pub mod calendar;
pub mod client;
pub mod contacts;
pub mod lane;
pub mod mail;
pub mod pacer;
pub mod paging;
pub mod permissions;
pub mod todo;
pub mod types;
pub mod users;

pub use auth::{AuthError, TokenSource};
pub use client::{GraphClient, GraphError};
pub use pacer::{GaveUp, OutagePolicy, Pacer, PacerSettings};
