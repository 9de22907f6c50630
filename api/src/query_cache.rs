//! A bounded cache of parsed GraphQL documents, by query text.
//!
//! A frontend sends the same few operations over and over, with different
//! variables. Parsing the query text is a large share of the cost of a small
//! query such as `myApplications`, so the parsed document of a query seen
//! before is cloned from here instead of parsed again. Only the text is
//! cached: variables, validation, depth and complexity limits still apply to
//! every request. The cache is bounded in entries, in the length of each
//! text it keeps and in the total length of those texts (a parsed document
//! takes up to some hundred times its text, so this bounds its memory to a
//! few tens of MiB whatever is sent), evicts the least recently used entry,
//! and keeps only documents that parsed; a text that does not parse is left
//! to the schema, which reports the error as it always does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_graphql::Request;
use async_graphql::parser::parse_query;
use async_graphql::parser::types::ExecutableDocument;
use hashlink::LruCache;

/// Entries kept unless configured otherwise: far more than the operations a
/// frontend and the operators' tools send.
pub const DEFAULT_ENTRIES: usize = 256;

/// Longest query text kept unless configured otherwise, in bytes. Longer
/// texts are parsed for each request, as without a cache.
pub const DEFAULT_MAX_QUERY_BYTES: usize = 4 * 1024;

/// Most bytes of query text kept in all, unless configured otherwise.
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 128 * 1024;

/// Parsed documents by query text; see the module documentation.
pub struct ParsedQueries {
    cache: Mutex<Cache>,
    max_entries: usize,
    max_query_bytes: usize,
    max_total_bytes: usize,
    hits: AtomicU64,
}

/// The documents, least recently used first, and the bytes of their texts.
struct Cache {
    documents: LruCache<Box<str>, ExecutableDocument>,
    text_bytes: usize,
}

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries::new(
            DEFAULT_ENTRIES,
            DEFAULT_MAX_QUERY_BYTES,
            DEFAULT_MAX_TOTAL_BYTES,
        )
    }
}

impl ParsedQueries {
    /// A cache of at most `max_entries` documents of texts of at most
    /// `max_query_bytes` bytes each and `max_total_bytes` in all.
    pub fn new(
        max_entries: usize,
        max_query_bytes: usize,
        max_total_bytes: usize,
    ) -> ParsedQueries {
        ParsedQueries {
            cache: Mutex::new(Cache {
                documents: LruCache::new_unbounded(),
                text_bytes: 0,
            }),
            max_entries: max_entries.max(1),
            max_query_bytes: max_query_bytes.min(max_total_bytes),
            max_total_bytes,
            hits: AtomicU64::new(0),
        }
    }

    /// Give `request` the parsed document of its query text: from the cache,
    /// or parsed now and kept. A text that does not parse, or is too long
    /// to keep, is left for the schema to parse.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > self.max_query_bytes {
            return;
        }
        if let Some(document) = self.lock().documents.get(request.query.as_str()).cloned() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            request.set_parsed_query(document);
            return;
        }
        // Parsed outside the lock, so a slow parse holds up no one.
        let Ok(document) = parse_query(&request.query) else {
            return;
        };
        self.keep(&request.query, document.clone());
        request.set_parsed_query(document);
    }

    /// Keep `document` as the parse of `text`, making room first.
    fn keep(&self, text: &str, document: ExecutableDocument) {
        let mut cache = self.lock();
        if cache.documents.contains_key(text) {
            return; // parsed by another request meanwhile
        }
        while cache.documents.len() >= self.max_entries
            || cache.text_bytes + text.len() > self.max_total_bytes
        {
            let Some((evicted, _)) = cache.documents.remove_lru() else {
                break;
            };
            cache.text_bytes -= evicted.len();
        }
        cache.text_bytes += text.len();
        cache.documents.insert(text.into(), document);
    }

    /// Requests served from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Documents kept now.
    pub fn len(&self) -> usize {
        self.lock().documents.len()
    }

    /// Whether no document is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break half-way.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Variables};
    use serde_json::json;

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn double(&self, n: i32) -> i32 {
            n * 2
        }
    }

    fn request(query: &str, n: i32) -> Request {
        Request::new(query).variables(Variables::from_json(json!({ "n": n })))
    }

    #[tokio::test]
    async fn a_cached_document_runs_with_each_requests_own_variables() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let cache = ParsedQueries::default();
        let query = "query($n: Int!) { double(n: $n) }";
        let mut answers = Vec::new();
        for n in [1, 20, 300] {
            let mut request = request(query, n);
            cache.prepare(&mut request);
            let response = schema.execute(request).await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            answers.push(response.data.into_json().unwrap());
        }
        assert_eq!(
            answers,
            [
                json!({"double": 2}),
                json!({"double": 40}),
                json!({"double": 600})
            ]
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.hits(), 2);
    }

    #[tokio::test]
    async fn bad_and_overlong_texts_are_not_kept_and_still_fail_as_before() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let cache = ParsedQueries::new(4, 64, 1024);

        let mut bad = Request::new("{ double(n: ");
        cache.prepare(&mut bad);
        let response = schema.execute(bad).await;
        assert_eq!(response.errors.len(), 1, "a parse error is reported");
        assert!(cache.is_empty());

        let long = format!("{{ double(n: 2) {} }}", " ".repeat(64));
        let mut overlong = Request::new(long.as_str());
        cache.prepare(&mut overlong);
        let response = schema.execute(overlong).await;
        assert_eq!(response.data.into_json().unwrap(), json!({"double": 4}));
        assert!(cache.is_empty());
        assert_eq!(cache.hits(), 0);
    }

    #[test]
    fn the_least_recently_used_text_leaves_first() {
        let cache = ParsedQueries::new(2, 1024, 1024);
        let texts = ["{ double(n: 1) }", "{ double(n: 2) }", "{ double(n: 3) }"];
        cache.prepare(&mut Request::new(texts[0]));
        cache.prepare(&mut Request::new(texts[1]));
        cache.prepare(&mut Request::new(texts[0])); // a hit: now the most recent
        cache.prepare(&mut Request::new(texts[2])); // evicts texts[1]
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.hits(), 1);
        cache.prepare(&mut Request::new(texts[0]));
        assert_eq!(cache.hits(), 2, "texts[0] stayed");
        cache.prepare(&mut Request::new(texts[1]));
        assert_eq!(cache.hits(), 2, "texts[1] had left and was parsed again");
    }

    #[test]
    fn the_texts_kept_stay_within_their_total_length() {
        let texts = [
            "{ double(n: 1) }",
            "{ double(n: 22) }",
            "{ double(n: 333) }",
        ];
        let total = texts[0].len() + texts[1].len();
        let cache = ParsedQueries::new(10, 1024, total);
        cache.prepare(&mut Request::new(texts[0]));
        cache.prepare(&mut Request::new(texts[1]));
        assert_eq!(cache.len(), 2, "both fit exactly");
        cache.prepare(&mut Request::new(texts[2]));
        assert_eq!(cache.len(), 1, "the longest needs the room of both");
        cache.prepare(&mut Request::new(texts[2]));
        assert_eq!(cache.hits(), 1);
        let stored = cache.lock().text_bytes;
        assert_eq!(stored, texts[2].len());
    }
}
