//! The crawl frontier in SQLite (`WORKDIR/crawl/frontier.sqlite`, WAL): every URL seen (unique,
//! normalized) with its depth, priority, status, attempts and next fetch time; robots.txt per
//! host; the candidates of each fetched page; drops by reason, and each dropped page or image
//! (for the stage's listing, `crawl/dropped/crawl.parquet`). A page's candidates, its new
//! links, its drops and its status change are written in one transaction, so a crawl killed at
//! any point resumes where it stopped, losing and duplicating nothing.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::candidate::{Candidate, CaptionSource};
use crate::dropped::DroppedRow;
use crate::error::SourcesError;

pub const PENDING: i64 = 0;
pub const DONE: i64 = 1;
pub const FAILED: i64 = 2;
pub const SKIPPED: i64 = 3;

/// Kinds of frontier entries.
pub const KIND_PAGE: i64 = 0;
pub const KIND_SITEMAP: i64 = 1;

/// One URL to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub url: String,
    pub host: String,
    pub depth: i64,
    pub seed: String,
    pub attempts: i64,
    pub kind: i64,
    pub hops: i64,
}

/// A new URL for the frontier.
#[derive(Debug, Clone)]
pub struct NewUrl {
    pub url: String,
    pub host: String,
    pub depth: i64,
    pub seed: String,
    pub kind: i64,
    pub hops: i64,
}

pub struct Frontier {
    conn: Connection,
    path: String,
}

fn e(path: &str) -> impl Fn(rusqlite::Error) -> SourcesError + '_ {
    move |err| SourcesError::Sqlite(path.to_string(), err)
}

impl Frontier {
    pub fn open(path: &Path) -> Result<Self, SourcesError> {
        let p = path.display().to_string();
        let conn = Connection::open(path).map_err(e(&p))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS urls(
                id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, host TEXT NOT NULL, depth INTEGER NOT NULL,
                seed TEXT NOT NULL, kind INTEGER NOT NULL DEFAULT 0, hops INTEGER NOT NULL DEFAULT 0,
                status INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
                next_fetch INTEGER NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0,
                fetched_at INTEGER, reason TEXT);
             CREATE INDEX IF NOT EXISTS urls_pending ON urls(status, priority, depth, id);
             CREATE TABLE IF NOT EXISTS robots(host TEXT PRIMARY KEY, body TEXT, status INTEGER NOT NULL, fetched_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS candidates(
                url_id INTEGER NOT NULL, ord INTEGER NOT NULL, url TEXT NOT NULL, caption TEXT NOT NULL,
                caption_source TEXT NOT NULL, page_url TEXT NOT NULL, page_lang TEXT, width INTEGER, height INTEGER,
                seed TEXT NOT NULL, fetch_time INTEGER, PRIMARY KEY(url_id, ord));
             CREATE TABLE IF NOT EXISTS drops(reason TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS dropped(
                id INTEGER PRIMARY KEY, url_id INTEGER NOT NULL, reason TEXT NOT NULL, url TEXT,
                page_url TEXT, caption TEXT, seed TEXT, detail TEXT);
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(e(&p))?;
        Ok(Frontier { conn, path: p })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, SourcesError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()
            .map_err(e(&self.path))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), SourcesError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta(key,value) VALUES(?1,?2)",
                [key, value],
            )
            .map(|_| ())
            .map_err(e(&self.path))
    }

    /// Adds URLs not seen before; returns how many were new.
    pub fn add(&mut self, urls: &[NewUrl]) -> Result<usize, SourcesError> {
        let tx = self.conn.transaction().map_err(e(&self.path))?;
        let n = insert_urls(&tx, urls).map_err(e(&self.path))?;
        tx.commit().map_err(e(&self.path))?;
        Ok(n)
    }

    /// Up to `limit` pending entries ready at `now_ms`, best first (sitemaps, then by depth).
    pub fn ready(&self, now_ms: i64, limit: usize) -> Result<Vec<Entry>, SourcesError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id,url,host,depth,seed,attempts,kind,hops FROM urls WHERE status=0 AND next_fetch<=?1
                 ORDER BY priority, depth, id LIMIT ?2",
            )
            .map_err(e(&self.path))?;
        let rows = st
            .query_map(params![now_ms, limit as i64], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    host: r.get(2)?,
                    depth: r.get(3)?,
                    seed: r.get(4)?,
                    attempts: r.get(5)?,
                    kind: r.get(6)?,
                    hops: r.get(7)?,
                })
            })
            .map_err(e(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(e(&self.path))
    }

    /// Earliest next fetch time of a pending entry, if any is pending.
    pub fn next_pending_time(&self) -> Result<Option<i64>, SourcesError> {
        self.conn
            .query_row("SELECT MIN(next_fetch) FROM urls WHERE status=0", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(e(&self.path))
    }

    /// Pages fetched (done) so far.
    pub fn pages_done(&self) -> Result<u64, SourcesError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM urls WHERE status=1 AND kind=0",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(e(&self.path))
    }

    /// Records a finished entry: its status, candidates, new links, drops and the dropped
    /// records listed one by one (`listed`: empty when the crawl does not list them), in one
    /// transaction.
    pub fn finish(
        &mut self,
        id: i64,
        status: i64,
        reason: Option<&str>,
        fetched_at: Option<i64>,
        cands: &[Candidate],
        links: &[NewUrl],
        drops: &openwit_core::Drops,
        listed: &[DroppedRow],
    ) -> Result<(), SourcesError> {
        let tx = self.conn.transaction().map_err(e(&self.path))?;
        (|| -> rusqlite::Result<()> {
            tx.execute(
                "UPDATE urls SET status=?2, reason=?3, fetched_at=?4 WHERE id=?1",
                params![id, status, reason, fetched_at],
            )?;
            tx.execute("DELETE FROM candidates WHERE url_id=?1", [id])?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO candidates(url_id,ord,url,caption,caption_source,page_url,page_lang,width,height,seed,fetch_time)
                     VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                )?;
                for (i, c) in cands.iter().enumerate() {
                    st.execute(params![
                        id,
                        i as i64,
                        c.url,
                        c.caption,
                        c.caption_source.as_str(),
                        c.page_url.as_deref().unwrap_or(""),
                        c.page_lang,
                        c.width,
                        c.height,
                        c.source_id,
                        c.fetch_time
                    ])?;
                }
            }
            insert_urls(&tx, links)?;
            add_drops(&tx, drops)?;
            if !listed.is_empty() {
                let mut st = tx.prepare_cached(
                    "INSERT INTO dropped(url_id,reason,url,page_url,caption,seed,detail)
                     VALUES(?1,?2,?3,?4,?5,?6,?7)",
                )?;
                for r in listed {
                    st.execute(params![
                        id, r.reason, r.url, r.page_url, r.caption, r.input, r.detail
                    ])?;
                }
            }
            Ok(())
        })()
        .map_err(e(&self.path))?;
        tx.commit().map_err(e(&self.path))
    }

    /// Puts an entry back for a later attempt.
    pub fn retry_later(&self, id: i64, at_ms: i64) -> Result<(), SourcesError> {
        self.conn
            .execute(
                "UPDATE urls SET attempts=attempts+1, next_fetch=?2 WHERE id=?1",
                params![id, at_ms],
            )
            .map(|_| ())
            .map_err(e(&self.path))
    }

    /// Counts drops outside a page transaction.
    pub fn add_drops(&mut self, drops: &openwit_core::Drops) -> Result<(), SourcesError> {
        let tx = self.conn.transaction().map_err(e(&self.path))?;
        add_drops(&tx, drops).map_err(e(&self.path))?;
        tx.commit().map_err(e(&self.path))
    }

    pub fn drops(&self) -> Result<openwit_core::Drops, SourcesError> {
        let mut st = self
            .conn
            .prepare("SELECT reason, n FROM drops")
            .map_err(e(&self.path))?;
        let mut d = openwit_core::Drops::default();
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(e(&self.path))?;
        for r in rows {
            let (k, v) = r.map_err(e(&self.path))?;
            d.add(k, v as u64);
        }
        Ok(d)
    }

    /// Streams every listed dropped record to `f` (the seed in `input`, one row per drop), in
    /// an order that does not depend on when the concurrent fetches finished (by page, then
    /// URL, as the candidates), so the listing is the same file on every run.
    pub fn for_each_dropped(
        &self,
        mut f: impl FnMut(DroppedRow) -> Result<(), SourcesError>,
    ) -> Result<u64, SourcesError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT reason,url,page_url,caption,seed,detail FROM dropped
                 ORDER BY page_url, url, reason, caption, detail, seed",
            )
            .map_err(e(&self.path))?;
        let mut rows = st.query([]).map_err(e(&self.path))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(e(&self.path))? {
            let reason: String = r.get(0).map_err(e(&self.path))?;
            f(DroppedRow {
                url: r.get(1).map_err(e(&self.path))?,
                page_url: r.get(2).map_err(e(&self.path))?,
                caption: r.get(3).map_err(e(&self.path))?,
                input: r.get(4).map_err(e(&self.path))?,
                detail: r.get(5).map_err(e(&self.path))?,
                ..DroppedRow::new(reason)
            })?;
            n += 1;
        }
        Ok(n)
    }

    /// The listed dropped records per reason.
    pub fn listed_drops(&self) -> Result<openwit_core::Drops, SourcesError> {
        let mut st = self
            .conn
            .prepare("SELECT reason, COUNT(*) FROM dropped GROUP BY reason")
            .map_err(e(&self.path))?;
        let mut d = openwit_core::Drops::default();
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(e(&self.path))?;
        for r in rows {
            let (k, v) = r.map_err(e(&self.path))?;
            d.add(k, v as u64);
        }
        Ok(d)
    }

    /// The cached robots.txt of `host`: (status, body).
    pub fn robots(&self, host: &str) -> Result<Option<(i64, String)>, SourcesError> {
        self.conn
            .query_row(
                "SELECT status, body FROM robots WHERE host=?1",
                [host],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    ))
                },
            )
            .optional()
            .map_err(e(&self.path))
    }

    pub fn set_robots(
        &self,
        host: &str,
        status: i64,
        body: &str,
        now: i64,
    ) -> Result<(), SourcesError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO robots(host,body,status,fetched_at) VALUES(?1,?2,?3,?4)",
                params![host, body, status, now],
            )
            .map(|_| ())
            .map_err(e(&self.path))
    }

    /// Streams every candidate, ordered by page URL and position, to `f`.
    pub fn for_each_candidate(
        &self,
        mut f: impl FnMut(Candidate) -> Result<(), SourcesError>,
    ) -> Result<u64, SourcesError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT c.url,c.caption,c.caption_source,c.page_url,c.page_lang,c.width,c.height,c.seed,c.fetch_time
                 FROM candidates c ORDER BY c.page_url, c.ord",
            )
            .map_err(e(&self.path))?;
        let mut rows = st.query([]).map_err(e(&self.path))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(e(&self.path))? {
            let src: String = r.get(2).map_err(e(&self.path))?;
            let c = Candidate {
                url: r.get(0).map_err(e(&self.path))?,
                caption: r.get(1).map_err(e(&self.path))?,
                caption_source: match src.as_str() {
                    "alt" => CaptionSource::Alt,
                    "title" => CaptionSource::Title,
                    "figcaption" => CaptionSource::Figcaption,
                    _ => CaptionSource::List,
                },
                page_url: Some(r.get(3).map_err(e(&self.path))?),
                page_lang: r.get(4).map_err(e(&self.path))?,
                width: r.get(5).map_err(e(&self.path))?,
                height: r.get(6).map_err(e(&self.path))?,
                source_id: r.get(7).map_err(e(&self.path))?,
                fetch_time: r.get(8).map_err(e(&self.path))?,
                extra: None,
            };
            f(c)?;
            n += 1;
        }
        Ok(n)
    }

    /// (status, count) over all entries.
    pub fn status_counts(&self) -> Result<Vec<(i64, i64)>, SourcesError> {
        let mut st = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM urls GROUP BY status ORDER BY status")
            .map_err(e(&self.path))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(e(&self.path))
    }
}

fn insert_urls(tx: &rusqlite::Transaction<'_>, urls: &[NewUrl]) -> rusqlite::Result<usize> {
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO urls(url,host,depth,seed,kind,hops,priority) VALUES(?1,?2,?3,?4,?5,?6,?7)",
    )?;
    let mut n = 0;
    for u in urls {
        let prio = if u.kind == KIND_SITEMAP { 0 } else { 1 };
        n += st.execute(params![
            u.url, u.host, u.depth, u.seed, u.kind, u.hops, prio
        ])?;
    }
    Ok(n)
}

fn add_drops(tx: &rusqlite::Transaction<'_>, drops: &openwit_core::Drops) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO drops(reason,n) VALUES(?1,?2) ON CONFLICT(reason) DO UPDATE SET n=n+?2",
    )?;
    for (k, v) in &drops.0 {
        st.execute(params![k, *v as i64])?;
    }
    Ok(())
}
