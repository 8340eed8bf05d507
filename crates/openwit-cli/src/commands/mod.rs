pub mod cluster;
pub mod explore;
pub mod run;
pub mod status;
