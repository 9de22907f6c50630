//! A bound on a GraphQL document's whole expanded size, checked on the parsed
//! document before validation or execution look at it.
//!
//! Validation and execution walk every operation with each fragment spread
//! replaced by the fragment's selections. A fragment that spreads the next
//! one twice doubles the work with each level, so a document of a few
//! kilobytes can stand for billions of fields. Here every fragment's
//! expanded size is computed once and reused wherever it is spread, so the
//! check is linear in the document's length; a fragment cycle, a spread of a
//! fragment the document does not define, or too many operations,
//! fragments, aliases or directives is refused as well.

use std::collections::HashMap;

use async_graphql::parser::types::{
    Directive, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::parser::{Positioned, types::FragmentDefinition};
use async_graphql_value::Value;
use serde_json::json;

use crate::error::ApiError;

/// Nodes of a document's expansion allowed unless configured otherwise; a
/// real portal query needs fewer than 200.
pub const DEFAULT_MAX_NODES: u64 = 1000;
/// Operations one document may define.
pub const MAX_OPERATIONS: usize = 16;
/// Fragments one document may define.
pub const MAX_FRAGMENTS: usize = 64;
/// Aliased fields in all operations of a document, once expanded. Costly
/// mutations repeated under aliases have their own cap per request; this
/// bounds the rest.
pub const MAX_ALIASES: u64 = 200;
/// Directives on one field, fragment spread, inline fragment or operation.
pub const MAX_DIRECTIVES: usize = 8;

/// The bounds a document is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBounds {
    /// Nodes of the expansion: fields, fragment spreads, inline fragments,
    /// directives and the values of their arguments, all operations together.
    pub max_nodes: u64,
    /// Operations in the document.
    pub max_operations: usize,
    /// Fragment definitions in the document.
    pub max_fragments: usize,
    /// Aliased fields in the expansion.
    pub max_aliases: u64,
    /// Directives on any one selection or operation.
    pub max_directives: usize,
}

impl Default for QueryBounds {
    fn default() -> Self {
        QueryBounds::with_max_nodes(DEFAULT_MAX_NODES)
    }
}

impl QueryBounds {
    /// The default bounds with `max_nodes` nodes of expansion.
    pub fn with_max_nodes(max_nodes: u64) -> QueryBounds {
        QueryBounds {
            max_nodes,
            max_operations: MAX_OPERATIONS,
            max_fragments: MAX_FRAGMENTS,
            max_aliases: MAX_ALIASES,
            max_directives: MAX_DIRECTIVES,
        }
    }
}

/// The size of a document's expansion, all operations together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuerySize {
    /// Nodes, as [`QueryBounds::max_nodes`] counts them.
    pub nodes: u64,
    /// Aliased fields.
    pub aliases: u64,
}

impl QuerySize {
    fn add(self, other: QuerySize) -> QuerySize {
        QuerySize {
            nodes: self.nodes.saturating_add(other.nodes),
            aliases: self.aliases.saturating_add(other.aliases),
        }
    }
}

/// Why a document is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRefusal {
    /// The expansion has more nodes than allowed.
    TooManyNodes { limit: u64 },
    /// The document defines more operations than allowed.
    TooManyOperations { limit: usize },
    /// The document defines more fragments than allowed.
    TooManyFragments { limit: usize },
    /// The expansion has more aliased fields than allowed.
    TooManyAliases { limit: u64 },
    /// One selection or operation carries more directives than allowed.
    TooManyDirectives { limit: usize },
    /// The fragment spreads itself, directly or through others.
    FragmentCycle { fragment: String },
    /// A spread names a fragment the document does not define.
    UnknownFragment { fragment: String },
}

impl QueryRefusal {
    /// The refusal as the API reports it: `INVALID_INPUT` with a `reason`
    /// (`QUERY_TOO_LARGE` and the `limit` for the bounds).
    pub fn to_api_error(&self) -> ApiError {
        let too_large = |limit: u64, en: String, nb: String| {
            ApiError::new("INVALID_INPUT", en, nb)
                .with("reason", json!("QUERY_TOO_LARGE"))
                .with("limit", json!(limit))
        };
        match self {
            QueryRefusal::TooManyNodes { limit } => too_large(
                *limit,
                format!(
                    "The query is too large: with its fragments spread out it asks for more than {limit} fields and values. Please ask for less in one request."
                ),
                format!(
                    "Spørringen er for stor: med fragmentene foldet ut ber den om mer enn {limit} felt og verdier. Be om mindre i én forespørsel."
                ),
            ),
            QueryRefusal::TooManyOperations { limit } => too_large(
                *limit as u64,
                format!("A request may hold at most {limit} operations."),
                format!("En forespørsel kan inneholde høyst {limit} operasjoner."),
            ),
            QueryRefusal::TooManyFragments { limit } => too_large(
                *limit as u64,
                format!("A request may define at most {limit} fragments."),
                format!("En forespørsel kan definere høyst {limit} fragmenter."),
            ),
            QueryRefusal::TooManyAliases { limit } => too_large(
                *limit,
                format!(
                    "A request may use at most {limit} aliased fields, fragments spread out included."
                ),
                format!(
                    "En forespørsel kan bruke høyst {limit} felt med alias, medregnet fragmentene."
                ),
            ),
            QueryRefusal::TooManyDirectives { limit } => too_large(
                *limit as u64,
                format!("A field, fragment or operation may carry at most {limit} directives."),
                format!("Et felt, et fragment eller en operasjon kan ha høyst {limit} direktiver."),
            ),
            QueryRefusal::FragmentCycle { fragment } => ApiError::new(
                "INVALID_INPUT",
                format!("The fragment \"{fragment}\" spreads itself, directly or through other fragments."),
                format!("Fragmentet «{fragment}» sprer seg selv, direkte eller gjennom andre fragmenter."),
            )
            .with("reason", json!("FRAGMENT_CYCLE")),
            QueryRefusal::UnknownFragment { fragment } => ApiError::new(
                "INVALID_INPUT",
                format!("The query spreads the fragment \"{fragment}\", which it does not define."),
                format!("Spørringen bruker fragmentet «{fragment}», som den ikke definerer."),
            )
            .with("reason", json!("UNKNOWN_FRAGMENT")),
        }
    }
}

impl std::fmt::Display for QueryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_api_error().en)
    }
}

impl std::error::Error for QueryRefusal {}

/// The size of `document`'s expansion, or why it is refused. Linear in the
/// document's size whatever its fragments do; never recurses deeper than
/// the parser's own nesting limit.
pub fn check(
    document: &ExecutableDocument,
    bounds: &QueryBounds,
) -> Result<QuerySize, QueryRefusal> {
    let operations = document.operations.iter().count();
    if operations > bounds.max_operations {
        return Err(QueryRefusal::TooManyOperations {
            limit: bounds.max_operations,
        });
    }
    if document.fragments.len() > bounds.max_fragments {
        return Err(QueryRefusal::TooManyFragments {
            limit: bounds.max_fragments,
        });
    }

    // Each fragment's own size and the fragments it spreads, once.
    let mut locals: HashMap<&str, Local<'_>> = HashMap::with_capacity(document.fragments.len());
    for (name, fragment) in &document.fragments {
        locals.insert(name.as_str(), local_of_fragment(fragment, bounds)?);
    }
    let expanded = expand_fragments(&locals, bounds)?;

    let mut total = QuerySize::default();
    for (_, operation) in document.operations.iter() {
        let local = local_of_operation(&operation.node, bounds)?;
        total = total.add(local.expanded_with(&expanded)?);
        within(total, bounds)?;
    }
    Ok(total)
}

fn within(size: QuerySize, bounds: &QueryBounds) -> Result<(), QueryRefusal> {
    if size.nodes > bounds.max_nodes {
        return Err(QueryRefusal::TooManyNodes {
            limit: bounds.max_nodes,
        });
    }
    if size.aliases > bounds.max_aliases {
        return Err(QueryRefusal::TooManyAliases {
            limit: bounds.max_aliases,
        });
    }
    Ok(())
}

/// What a selection set holds by itself, and the fragments it spreads (once
/// per spread).
#[derive(Default)]
struct Local<'a> {
    size: QuerySize,
    spreads: Vec<&'a str>,
}

impl Local<'_> {
    /// Own size plus the expanded size of every fragment spread.
    fn expanded_with(
        &self,
        expanded: &HashMap<&str, QuerySize>,
    ) -> Result<QuerySize, QueryRefusal> {
        let mut size = self.size;
        for spread in &self.spreads {
            let fragment = expanded
                .get(spread)
                .ok_or_else(|| QueryRefusal::UnknownFragment {
                    fragment: (*spread).to_owned(),
                })?;
            size = size.add(*fragment);
        }
        Ok(size)
    }
}

fn local_of_fragment<'a>(
    fragment: &'a Positioned<FragmentDefinition>,
    bounds: &QueryBounds,
) -> Result<Local<'a>, QueryRefusal> {
    let mut local = Local::default();
    directives(&mut local, &fragment.node.directives, bounds)?;
    selection_set(&mut local, &fragment.node.selection_set.node, bounds)?;
    Ok(local)
}

fn local_of_operation<'a>(
    operation: &'a OperationDefinition,
    bounds: &QueryBounds,
) -> Result<Local<'a>, QueryRefusal> {
    let mut local = Local::default();
    directives(&mut local, &operation.directives, bounds)?;
    for variable in &operation.variable_definitions {
        directives(&mut local, &variable.node.directives, bounds)?;
        if let Some(default) = &variable.node.default_value {
            local.size.nodes = local
                .size
                .nodes
                .saturating_add(value_nodes(&default.node.clone().into_value()));
        }
    }
    selection_set(&mut local, &operation.selection_set.node, bounds)?;
    Ok(local)
}

/// Adds a selection set's own nodes to `local`. Recursion follows the
/// document's nesting of selection sets, which the parser bounds.
fn selection_set<'a>(
    local: &mut Local<'a>,
    set: &'a SelectionSet,
    bounds: &QueryBounds,
) -> Result<(), QueryRefusal> {
    for selection in &set.items {
        local.size.nodes = local.size.nodes.saturating_add(1);
        match &selection.node {
            Selection::Field(field) => self::field(local, &field.node, bounds)?,
            Selection::FragmentSpread(spread) => {
                directives(local, &spread.node.directives, bounds)?;
                local.spreads.push(spread.node.fragment_name.node.as_str());
            }
            Selection::InlineFragment(inline) => {
                directives(local, &inline.node.directives, bounds)?;
                selection_set(local, &inline.node.selection_set.node, bounds)?;
            }
        }
    }
    Ok(())
}

fn field<'a>(
    local: &mut Local<'a>,
    field: &'a Field,
    bounds: &QueryBounds,
) -> Result<(), QueryRefusal> {
    if field.alias.is_some() {
        local.size.aliases = local.size.aliases.saturating_add(1);
    }
    for (_, value) in &field.arguments {
        local.size.nodes = local.size.nodes.saturating_add(value_nodes(&value.node));
    }
    directives(local, &field.directives, bounds)?;
    selection_set(local, &field.selection_set.node, bounds)
}

fn directives(
    local: &mut Local<'_>,
    directives: &[Positioned<Directive>],
    bounds: &QueryBounds,
) -> Result<(), QueryRefusal> {
    if directives.len() > bounds.max_directives {
        return Err(QueryRefusal::TooManyDirectives {
            limit: bounds.max_directives,
        });
    }
    for directive in directives {
        local.size.nodes = local.size.nodes.saturating_add(1);
        for (_, value) in &directive.node.arguments {
            local.size.nodes = local.size.nodes.saturating_add(value_nodes(&value.node));
        }
    }
    Ok(())
}

/// Nodes of a value (a list or an object counts itself and its items),
/// walked with an explicit stack: the parser does not bound a value's
/// nesting.
fn value_nodes(value: &Value) -> u64 {
    let mut nodes = 0u64;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        nodes = nodes.saturating_add(1);
        match value {
            Value::List(items) => stack.extend(items.iter()),
            Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
    nodes
}

/// The expanded size of every fragment, each computed once after the
/// fragments it spreads (an explicit depth-first walk, so a long chain of
/// fragments needs no deep recursion). A cycle or an unknown fragment is
/// refused; so is a fragment bigger than the bounds on its own.
fn expand_fragments<'a>(
    locals: &HashMap<&'a str, Local<'a>>,
    bounds: &QueryBounds,
) -> Result<HashMap<&'a str, QuerySize>, QueryRefusal> {
    let mut expanded: HashMap<&'a str, QuerySize> = HashMap::with_capacity(locals.len());
    let mut on_path: HashMap<&'a str, ()> = HashMap::new();
    for &root in locals.keys() {
        if expanded.contains_key(root) {
            continue;
        }
        // (fragment, index of the next spread to look at)
        let mut stack: Vec<(&'a str, usize)> = vec![(root, 0)];
        on_path.insert(root, ());
        while let Some((name, next)) = stack.last_mut() {
            let local = &locals[*name];
            if let Some(&spread) = local.spreads.get(*next) {
                *next += 1;
                if expanded.contains_key(spread) {
                    continue;
                }
                if on_path.contains_key(spread) {
                    return Err(QueryRefusal::FragmentCycle {
                        fragment: spread.to_owned(),
                    });
                }
                if !locals.contains_key(spread) {
                    return Err(QueryRefusal::UnknownFragment {
                        fragment: spread.to_owned(),
                    });
                }
                on_path.insert(spread, ());
                stack.push((spread, 0));
                continue;
            }
            let name = *name;
            let size = local.expanded_with(&expanded)?;
            within(size, bounds)?;
            expanded.insert(name, size);
            on_path.remove(name);
            stack.pop();
        }
    }
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use async_graphql::parser::parse_query;

    use super::*;

    /// `query { ...F0 }` where each fragment spreads the next twice, down
    /// to `F{levels - 1}`.
    fn fan_out(levels: usize) -> String {
        let mut query = String::from(
            "query { ...F0 } fragment F0 on QueryRoot { passwordPolicy { kind } ...F1 ...F1 }",
        );
        for level in 1..levels - 1 {
            query.push_str(&format!(
                " fragment F{level} on QueryRoot {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        query.push_str(&format!(
            " fragment F{} on QueryRoot {{ passwordPolicy {{ kind }} }}",
            levels - 1
        ));
        query
    }

    fn size(query: &str) -> Result<QuerySize, QueryRefusal> {
        check(&parse_query(query).unwrap(), &QueryBounds::default())
    }

    #[test]
    fn a_plain_query_counts_fields_arguments_and_aliases() {
        let size = size(
            "query { a: passwordPolicy { kind } myApplications(first: 5) { edges { node { id status } } } }",
        )
        .unwrap();
        // passwordPolicy, kind, myApplications, 5, edges, node, id, status
        assert_eq!(
            size,
            QuerySize {
                nodes: 8,
                aliases: 1
            }
        );
    }

    #[test]
    fn fragments_and_inline_fragments_count_where_they_are_spread() {
        let size = size(
            "{ ...A ...A ... on QueryRoot { x: passwordPolicy { kind } } } fragment A on QueryRoot { passwordPolicy { kind rules } }",
        )
        .unwrap();
        // 2 spreads, each 3 nodes; an inline fragment with 2 fields.
        assert_eq!(
            size,
            QuerySize {
                nodes: 2 + 2 * 3 + 3,
                aliases: 1
            }
        );
    }

    #[test]
    fn the_fan_out_is_refused_quickly_at_28_40_60_and_200_levels() {
        for levels in [28, 40, 60] {
            let started = Instant::now();
            assert_eq!(
                size(&fan_out(levels)),
                Err(QueryRefusal::TooManyNodes {
                    limit: DEFAULT_MAX_NODES
                }),
                "{levels} levels"
            );
            assert!(started.elapsed() < Duration::from_millis(100), "{levels}");
        }
        // Beyond the fragment limit the count is not even needed.
        let bounds = QueryBounds {
            max_fragments: 1000,
            ..QueryBounds::default()
        };
        let started = Instant::now();
        let document = parse_query(fan_out(200)).unwrap();
        assert_eq!(
            check(&document, &bounds),
            Err(QueryRefusal::TooManyNodes {
                limit: DEFAULT_MAX_NODES
            })
        );
        assert!(started.elapsed() < Duration::from_millis(200));
        assert_eq!(
            check(&document, &QueryBounds::default()),
            Err(QueryRefusal::TooManyFragments {
                limit: MAX_FRAGMENTS
            })
        );
    }

    #[test]
    fn a_small_fan_out_is_counted_exactly() {
        // F0 = 2 + 2 spreads + 2·F1; F1 = 2 + 2·F2; F2 = 2 (passwordPolicy, kind).
        let size = size(&fan_out(3)).unwrap();
        let f2 = 2;
        let f1 = 2 + 2 * f2;
        let f0 = 2 + 2 + 2 * f1;
        assert_eq!(size.nodes, 1 + f0);
    }

    #[test]
    fn cycles_and_unknown_fragments_are_refused() {
        assert_eq!(
            size("{ ...A } fragment A on QueryRoot { ...A }"),
            Err(QueryRefusal::FragmentCycle {
                fragment: "A".into()
            })
        );
        assert!(matches!(
            size(
                "{ ...A } fragment A on QueryRoot { x { ...B } } fragment B on QueryRoot { ... on QueryRoot { ...A } }"
            ),
            Err(QueryRefusal::FragmentCycle { .. })
        ));
        assert_eq!(
            size("{ ...Missing }"),
            Err(QueryRefusal::UnknownFragment {
                fragment: "Missing".into()
            })
        );
        assert_eq!(
            size("{ ...A } fragment A on QueryRoot { ...Gone }"),
            Err(QueryRefusal::UnknownFragment {
                fragment: "Gone".into()
            })
        );
    }

    #[test]
    fn large_argument_values_count_at_every_spread() {
        let list = vec!["1"; 300].join(",");
        let query = format!(
            "{{ ...A ...A ...A ...A }} fragment A on QueryRoot {{ passwordPolicy(x: [{list}]) {{ kind }} }}"
        );
        assert_eq!(
            size(&query),
            Err(QueryRefusal::TooManyNodes {
                limit: DEFAULT_MAX_NODES
            })
        );
        let query = format!("{{ passwordPolicy(x: [{list}]) {{ kind }} }}");
        assert_eq!(size(&query).unwrap().nodes, 2 + 301);
    }

    #[test]
    fn operations_aliases_and_directives_are_bounded() {
        let many: String = (0..=MAX_OPERATIONS)
            .map(|i| format!("query Q{i} {{ passwordPolicy {{ kind }} }} "))
            .collect();
        assert_eq!(
            size(&many),
            Err(QueryRefusal::TooManyOperations {
                limit: MAX_OPERATIONS
            })
        );
        let aliased: String = (0..=MAX_ALIASES)
            .map(|i| format!("a{i}: startRegistration(email: \"x@example.no\") {{ flowId }} "))
            .collect();
        assert_eq!(
            size(&format!("mutation {{ {aliased} }}")),
            Err(QueryRefusal::TooManyAliases { limit: MAX_ALIASES })
        );
        let directives = "@include(if: true) ".repeat(MAX_DIRECTIVES + 1);
        assert_eq!(
            size(&format!("{{ passwordPolicy {directives} {{ kind }} }}")),
            Err(QueryRefusal::TooManyDirectives {
                limit: MAX_DIRECTIVES
            })
        );
    }

    #[test]
    fn the_refusal_names_its_reason_and_limit() {
        let error = QueryRefusal::TooManyNodes { limit: 1000 }.to_api_error();
        assert_eq!(error.code, "INVALID_INPUT");
        assert!(error.en.contains("1000"), "{}", error.en);
        assert!(
            error
                .extensions
                .contains(&("reason", json!("QUERY_TOO_LARGE")))
        );
        assert!(error.extensions.contains(&("limit", json!(1000))));
    }
}
