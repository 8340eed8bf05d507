//! The index schema and the tokenizers it needs.

use tantivy::Index;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};

/// Name of the tokenizer of the `entry` field: the whole entry, lowercased.
pub const ENTRY_TOKENIZER: &str = "entry_raw_lower";

/// The fields of an OpenWIT index.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The caption: English analyzer with stemming, positions (phrase queries), stored.
    pub caption: Field,
    /// Each matched query entry (whole, lowercased), stored.
    pub entry: Field,
    /// Matched entry ids, stored.
    pub entry_id: Field,
    /// Lowercased host of the image URL.
    pub domain: Field,
    pub shard: Field,
    pub key: Field,
    pub url: Field,
    pub width: Field,
    pub height: Field,
    pub language: Field,
    /// Extension, offset and size of the image member in the tar.
    pub image_ext: Field,
    pub image_offset: Field,
    pub image_size: Field,
    /// Offset and size of the json member in the tar.
    pub json_offset: Field,
    pub json_size: Field,
}

/// Builds the schema.
pub fn schema() -> Schema {
    let mut b = Schema::builder();
    let caption = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    b.add_text_field("caption", caption);
    let entry = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ENTRY_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_stored();
    b.add_text_field("entry", entry);
    b.add_u64_field("entry_id", INDEXED | STORED);
    b.add_text_field("domain", STRING | STORED);
    b.add_text_field("shard", STRING | STORED);
    b.add_text_field("key", STRING | STORED);
    b.add_text_field("url", STORED);
    b.add_u64_field("width", INDEXED | STORED | FAST);
    b.add_u64_field("height", INDEXED | STORED | FAST);
    b.add_text_field("language", STRING | STORED);
    b.add_text_field("image_ext", STORED);
    b.add_u64_field("image_offset", STORED);
    b.add_u64_field("image_size", STORED);
    b.add_u64_field("json_offset", STORED);
    b.add_u64_field("json_size", STORED);
    b.build()
}

impl Fields {
    /// The fields of `schema` (built by [`schema`]); `None` for an index with another schema.
    pub fn of(schema: &Schema) -> Option<Fields> {
        let f = |n: &str| schema.get_field(n).ok();
        Some(Fields {
            caption: f("caption")?,
            entry: f("entry")?,
            entry_id: f("entry_id")?,
            domain: f("domain")?,
            shard: f("shard")?,
            key: f("key")?,
            url: f("url")?,
            width: f("width")?,
            height: f("height")?,
            language: f("language")?,
            image_ext: f("image_ext")?,
            image_offset: f("image_offset")?,
            image_size: f("image_size")?,
            json_offset: f("json_offset")?,
            json_size: f("json_size")?,
        })
    }
}

/// Registers the tokenizers the schema names (call on every index opened or created).
pub fn register_tokenizers(index: &Index) {
    index.tokenizers().register(
        ENTRY_TOKENIZER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
}

/// The lowercased host of `url` (`""` when it has none).
pub fn domain_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_start_matches("www.").to_ascii_lowercase())
        })
        .unwrap_or_default()
}
