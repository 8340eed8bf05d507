//! `openwit-curate`: the `curate` stage and the `balance` stage of OpenWIT.
//!
//! - [`CurateStage`] reads the candidate table (any source stage) and the query list, and keeps
//!   the pairs CLIP's recipe keeps: a clean caption ([`quality`]), in English ([`lang`]), that
//!   contains a query entry under MetaCLIP's matching rule ([`Matcher`]), once per URL or
//!   (URL, caption) pair, balanced so that no entry has more than `t` pairs ([`balance`]).
//! - [`BalanceStage`] balances again on the downloaded samples (MetaCLIP balances last, since
//!   downloads fail), with the same reproducible draws.
//!
//! ```
//! use openwit_curate::Matcher;
//! let m = Matcher::new(&["dog", "hot dog", "New York"]).unwrap();
//! let (mut buf, mut ids) = (Default::default(), Vec::new());
//! m.find("A hot dog in New York.", &mut buf, &mut ids);
//! assert_eq!(ids, vec![0, 1, 2]);
//! ```

pub mod balance;
pub mod config;
pub mod error;
pub mod lang;
#[doc(hidden)]
pub mod langset;
pub mod matcher;
pub mod quality;
pub mod rebalance;
pub mod stage;
pub mod table;

pub use config::{
    BalanceConfig, CurateConfig, DedupMode, LanguageConfig, QualityConfig, RebalanceConfig,
};
pub use error::CurateError;
pub use matcher::{MatchEngine, Matcher};
pub use rebalance::BalanceStage;
pub use stage::CurateStage;
