pub mod cluster;
pub mod explore;
pub mod prepare;
pub mod ranks;
pub mod run;
pub mod status;
pub mod summary;
