//! Pipeline files: a `[pipeline]` table and one table per stage.
//!
//! Each stage's table is deserialized straight from the file's text into the stage's typed
//! config, so an unknown key or a wrong type is reported with `file:line:column`, the key, and
//! the valid keys. Top-level tables that no stage owns are rejected the same way.
//!
//! Numbers are checked on load: `inf` and `nan` anywhere in the file
//! ([`crate::config::reject_non_finite`]), and each numeric key against its range as the
//! stage's config is read (`crate::config::range`), all with `file:line:column`.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::config::{located, parse_toml, reject_non_finite};
use crate::error::{Error, Result};
use crate::pipeline::PipelineSettings;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// A parsed pipeline file.
pub struct PipelineDoc {
    path: PathBuf,
    text: String,
    pipeline: PipelineSettings,
    tables: BTreeSet<String>,
    /// The table names stages own, in pipeline order.
    stages: Vec<String>,
}

impl PipelineDoc {
    /// Reads and checks `path`; `stages` are the table names stages own, in pipeline order;
    /// `others` the tables that are not stages (such as the demo's `[demo_site]`).
    pub fn load(path: &Path, stages: &[&str], others: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "{}: cannot read the pipeline file: {e}",
                path.display()
            ))
        })?;
        Self::parse_with(path, text, stages, others)
    }

    /// Parses `text` as the pipeline file `path` whose tables are the stages `stages` (in
    /// pipeline order).
    pub fn parse(path: &Path, text: String, stages: &[&str]) -> Result<Self> {
        Self::parse_with(path, text, stages, &[])
    }

    /// [`PipelineDoc::parse`], where the tables `others` are allowed too (they are not stages).
    pub fn parse_with(path: &Path, text: String, stages: &[&str], others: &[&str]) -> Result<Self> {
        let known: Vec<&str> = stages.iter().chain(others).copied().collect();
        // Syntax first, with a located error.
        let table: toml::Table = parse_toml(path, &text)?;
        reject_non_finite(path, &text)?;
        let tables: BTreeSet<String> = table.keys().cloned().collect();
        for key in &tables {
            if key != "pipeline" && !known.contains(&key.as_str()) {
                let (line, col) = find_key(&text, key);
                let mut valid: Vec<&str> = vec!["pipeline"];
                valid.extend_from_slice(&known);
                return Err(Error::Config(format!(
                    "{}:{line}:{col}: unknown table `{key}`; valid tables: {}\n  fix: remove it or fix its name (see pipelines/README.md)",
                    path.display(),
                    valid
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if !table[key].is_table() {
                let (line, col) = find_key(&text, key);
                return Err(Error::Config(format!(
                    "{}:{line}:{col}: `{key}` must be a table (`[{key}]`)",
                    path.display()
                )));
            }
        }
        let mut doc = PipelineDoc {
            path: path.to_path_buf(),
            text,
            pipeline: PipelineSettings::default(),
            tables,
            stages: stages.iter().map(|k| k.to_string()).collect(),
        };
        if let Some(p) = doc.section::<PipelineSettings>("pipeline")? {
            doc.pipeline = p;
        }
        Ok(doc)
    }

    /// The pipeline file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder of the pipeline file: relative input paths in stage tables are resolved
    /// against it.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The `[pipeline]` table.
    pub fn pipeline(&self) -> &PipelineSettings {
        &self.pipeline
    }

    /// The `[pipeline]` table, to override from the command line (`--workdir`, `--jobs`).
    pub fn pipeline_mut(&mut self) -> &mut PipelineSettings {
        &mut self.pipeline
    }

    /// Whether the file has a table `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tables.contains(name)
    }

    /// The stage tables of the file, in pipeline order.
    pub fn stages(&self) -> impl Iterator<Item = &str> {
        self.stages
            .iter()
            .map(String::as_str)
            .filter(|k| self.has(k))
    }

    /// The error for a table whose stage this binary was built without (cargo feature
    /// `feature`), located at the table's header.
    pub fn needs_feature(&self, table: &str, feature: &str) -> Error {
        let (line, col) = find_key(&self.text, table);
        Error::Config(format!(
            "{}:{line}:{col}: `[{table}]` needs the cargo feature `{feature}`, and this openwit binary was built without it\n  fix: rebuild with it (libtorch 2.11 is needed): `source scripts/libtorch-env.sh && cargo build --release -p openwit-cli --features {feature}` (scripts/demo.sh and scripts/test.sh do so by default), or remove the table",
            self.path.display()
        ))
    }

    /// The table `name` as `T` (None when absent), with located errors.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        if !self.has(name) {
            return Ok(None);
        }
        let seed = Section::<T> {
            name,
            _t: PhantomData,
        };
        let de = toml::Deserializer::parse(&self.text)
            .map_err(|e| located(&self.path, &self.text, &e))?;
        seed.deserialize(de)
            .map_err(|e| located(&self.path, &self.text, &e))
    }
}

/// Position of a top-level key (`[key]` header or `key = ...`) in the text.
fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let header = t
            .strip_prefix('[')
            .map(|r| r.trim_start_matches('[').trim_start());
        let starts = |s: &str| {
            s.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with([']', '=', '.']))
        };
        if header.is_some_and(starts) || starts(t) {
            return (i + 1, indent + 1);
        }
    }
    (1, 1)
}

/// Deserializes only the top-level key `name` of a document, ignoring the others.
struct Section<'n, T> {
    name: &'n str,
    _t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Section<'_, T> {
    type Value = Option<T>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Section<'_, T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a pipeline file with tables")
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.name {
                out = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Toy {
        tasks: u32,
        #[serde(default)]
        label: String,
    }

    fn doc(text: &str) -> Result<PipelineDoc> {
        PipelineDoc::parse(Path::new("p.toml"), text.to_string(), &["toy", "other"])
    }

    #[test]
    fn sections_parse_and_defaults_apply() {
        let d = doc("[pipeline]\nworkdir = \"w\"\nseed = 7\n\n[toy]\ntasks = 3\n").unwrap();
        assert_eq!(d.pipeline().seed, 7);
        assert_eq!(d.pipeline().max_attempts, 3);
        assert_eq!(
            d.section::<Toy>("toy").unwrap(),
            Some(Toy {
                tasks: 3,
                label: String::new()
            })
        );
        assert_eq!(d.section::<Toy>("other").unwrap(), None);
    }

    #[test]
    fn stages_are_the_present_tables_in_pipeline_order() {
        let text = "[other]\n\n[pipeline]\nworkdir = \"w\"\n\n[toy]\ntasks = 1\n";
        let d = PipelineDoc::parse_with(
            Path::new("p.toml"),
            text.into(),
            &["third", "toy"],
            &["other"],
        )
        .unwrap();
        assert_eq!(d.stages().collect::<Vec<_>>(), ["toy"]);
    }

    #[test]
    fn unknown_key_in_a_stage_table_is_located() {
        let d = doc("[pipeline]\nworkdir = \"w\"\n\n[toy]\ntasks = 3\ntaks = 4\n").unwrap();
        let e = d.section::<Toy>("toy").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:6:1: unknown field `taks`"), "{e}");
        assert!(e.contains("`tasks`") && e.contains("`label`"), "{e}");
    }

    #[test]
    fn wrong_type_and_unknown_table_are_located() {
        let d = doc("[toy]\ntasks = \"three\"\n").unwrap();
        let e = d.section::<Toy>("toy").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:2:9:"), "{e}");
        let e = doc("[pipeline]\n\n[tyo]\ntasks = 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("p.toml:3:1: unknown table `tyo`"), "{e}");
        assert!(e.contains("`toy`"), "{e}");
        let e = doc("[pipeline]\nworkdr = \"x\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("p.toml:2:1: unknown field `workdr`"), "{e}");
    }

    #[test]
    fn a_table_of_a_missing_feature_is_located_and_says_how_to_build() {
        let d = doc("[pipeline]\nworkdir = \"w\"\n\n[toy]\ntasks = 1\n").unwrap();
        let e = d.needs_feature("toy", "train").to_string();
        assert!(
            e.starts_with("p.toml:4:1: `[toy]` needs the cargo feature `train`"),
            "{e}"
        );
        assert!(e.contains("--features train"), "{e}");
    }
}
