//! The pure building blocks the services' rules are written with: who is
//! calling ([`caller`]), what time it is ([`time`]), every field a request got
//! wrong and how lists are paged ([`validation`]), distances on the earth
//! ([`geo`]), UK postcodes ([`postcode`]) and directory files to import
//! ([`directory_file`]). Nothing here knows of gRPC, the database or NATS, so the
//! services' `domain/` modules compile without them.

pub mod caller;
pub mod directory_file;
pub mod geo;
pub mod postcode;
pub mod time;
pub mod validation;
