//! Phase 4: the graph to Rust.
//!
//! The graph is cut into **segments**: maximal runs of nodes where items
//! flow from one stage straight to the next. A segment starts at a source
//! or at an *inlet* (a node fed by a merge, a fan-out, a branch port or an
//! `errors` port) and runs as one fused chain, built one `>>` at a time:
//!
//! ```text
//! let chain = head(iter(v), stats_0, CHUNK);    // or inlet(rx, CHUNK)
//! let stage = map(marker(&chain), |x| x + 1);   // the closure learns its type here
//! let chain = fuse(chain, stage, stats_1);      // and the edge is checked here
//! ```
//!
//! A segment ends in a sink (driven by `drive`), or in an outlet that
//! ships its chunks into the edges of the segments it feeds (`drive_into`).
//! Segments are emitted in dependency order, so an edge's item type is
//! known from its producer before any consumer's closure needs it. The
//! segments go to `Pipeline::segmented`: run, they share the caller's
//! task; spawned, each is a task of its own.
//!
//! Every user expression is re-emitted with its own spans, so type errors
//! land on the user's tokens. When validation failed, the segments that had
//! no error of their own are still emitted (inside a closure that never
//! runs) so the IDE keeps checking them, followed by the errors and a stub
//! pipeline of the right type.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use petgraph::graph::{EdgeIndex, NodeIndex};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Expr;

use crate::check::Verdict;
use crate::diagnostics::Diagnostics;
use crate::graph::{Graph, Kind, Node};
use crate::lower::Op;
use crate::ops::{Args, fields};

/// The expansion of a `pipeline!`.
pub fn generate(graph: &Graph, verdict: &Verdict, diagnostics: &Diagnostics) -> TokenStream {
    let wiring = Wiring::new(graph);
    let private = private_path();
    let valid = diagnostics.is_empty();
    let order = wiring.segment_order();
    let mut emitted: HashSet<usize> = HashSet::new();
    let mut covered: HashSet<NodeIndex> = HashSet::new();
    let mut segments = TokenStream::new();
    let mut segment_vars = Vec::new();
    for index in order {
        let segment = &wiring.segments[index];
        let ok = segment.nodes.iter().all(|&node| verdict.ok(node))
            && wiring
                .dependencies(index)
                .iter()
                .all(|d| emitted.contains(d));
        if !ok {
            // After an error, the stages before it in its segment are
            // still emitted, typed from upstream, so the IDE checks and
            // completes their closures.
            let ready = wiring
                .dependencies(index)
                .iter()
                .all(|d| emitted.contains(d));
            if ready && !valid {
                let (code, nodes) = wiring.prefix_code(index, verdict);
                segments.extend(quote! { { #code } });
                covered.extend(nodes);
            }
            continue;
        }
        emitted.insert(index);
        covered.extend(segment.nodes.iter().copied());
        let var = format_ident!("__pipeline_segment_{}", index, span = Span::mixed_site());
        let code = wiring.segment_code(index);
        segments.extend(quote! { let #var = { #code }; });
        segment_vars.push(var);
    }
    let mut setup = wiring.setup_code();
    let open = has_output(graph);
    let outputs = local("__pipeline_outputs", Span::call_site());
    if open {
        let sink = local("__pipeline_output", Span::call_site());
        setup.extend(quote! {
            let (#sink, #outputs) = #private::stream_sink(#private::DEFAULT_BUFFER);
        });
    }
    if valid && !segment_vars.is_empty() {
        let body = nested_tuple(&segment_vars);
        let stats = wiring.stats_vars();
        let edges = wiring.edge_vars();
        let senders = wiring.channel_senders();
        let description = wiring.description();
        let finish = if open {
            quote!(#private::open(__pipeline, #outputs))
        } else {
            quote!(__pipeline)
        };
        return quote! {
            {
                #setup
                #segments
                // The segments hold clones; the originals must go, or the
                // edges would never close.
                #( ::std::mem::drop(#senders); )*
                // Run, the segments share the caller's task; spawned, each
                // is a task of its own.
                let __pipeline = #private::Pipeline::segmented(
                    ::std::vec![#(#stats),*],
                    #body,
                )
                .with_edges(::std::vec![#(#edges),*])
                .with_graph(#description);
                #finish
            }
        };
    }
    let errors = diagnostics.to_compile_errors();
    let leftovers = wiring.leftover_expressions(&covered);
    let stub = if open {
        quote!(#private::invalid_open())
    } else {
        quote!(#private::invalid())
    };
    quote! {
        {
            #errors
            let _ = || {
                #setup
                #segments
                #leftovers
            };
            #stub
        }
    }
}

/// Whether a chain ends in `output()`: the pipeline is then read as a
/// stream.
fn has_output(graph: &Graph) -> bool {
    graph.graph.node_indices().any(|n| {
        graph
            .node(n)
            .ir
            .builtin()
            .is_some_and(|call| call.op.stream_output)
    })
}

fn private_path() -> TokenStream {
    quote!(::pipeline::__private)
}

/// `::pipeline::__private` with every token at `span`, so that errors from
/// a call through it are reported at the user's node.
fn private_path_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::pipeline::__private)
}

/// `(a, (b, (c, ())))`: the list form the runtime takes segments and a
/// diamond's branches in.
fn nested_tuple(vars: &[syn::Ident]) -> TokenStream {
    vars.iter()
        .rev()
        .fold(quote!(()), |rest, var| quote!((#var, #rest)))
}

/// A hygienic name that reports at `span`.
fn local(name: &str, span: Span) -> syn::Ident {
    syn::Ident::new(name, Span::mixed_site().located_at(span))
}

/// Fused stages between two boxes of a chain's pull future (see
/// `__private::boxed`).
const BOX_EVERY: usize = 8;

/// The most stages composed into one pass: the runtime's
/// `transform::MAX_STEPS`.
const COMPOSE_MAX: usize = 16;

/// A run of nodes fused into one chain.
struct Segment {
    nodes: Vec<NodeIndex>,
    /// Whether the first node is fed by an edge rather than being a source.
    inlet: bool,
}

/// A fan-out whose branches all merge back into one node, with nothing on
/// the way that needs an edge: fused into the fan-out's segment.
struct DiamondPlan {
    /// The nodes of each branch, in order (a branch may be empty: the
    /// fan-out feeds the merge directly).
    branches: Vec<Vec<NodeIndex>>,
    /// Each branch's edge out of the fan-out.
    starts: Vec<EdgeIndex>,
    /// Each branch's edge into the merge node.
    ends: Vec<EdgeIndex>,
    merge: NodeIndex,
}

struct Wiring<'a> {
    graph: &'a Graph,
    /// Diamonds, by fan-out node.
    diamonds: HashMap<NodeIndex, DiamondPlan>,
    segments: Vec<Segment>,
    segment_of: HashMap<NodeIndex, usize>,
    /// Nodes fed by an edge (a channel), in node order.
    inlets: Vec<NodeIndex>,
    /// Inlets whose item type an emitted edge has already fixed.
    typed: RefCell<HashSet<NodeIndex>>,
}

impl<'a> Wiring<'a> {
    fn new(graph: &'a Graph) -> Self {
        let diamonds = find_diamonds(graph);
        let fused_in: HashSet<NodeIndex> = diamonds
            .values()
            .flat_map(|d| d.branches.iter().flatten().copied().chain([d.merge]))
            .collect();
        let is_inlet = |node: NodeIndex| -> bool {
            if fused_in.contains(&node) {
                return false;
            }
            let inputs = graph.inputs(node);
            // An option of the node's input edge (or its workers) gives it
            // an edge of its own.
            let needs_edge =
                graph.node(node).ir.options.needs_edge() || runs_on_workers(graph, node);
            if needs_edge && !inputs.is_empty() {
                return true;
            }
            // An accumulator with deadlines wakes on them, so it reads from
            // an edge rather than pulling its upstream; one without is fused.
            if graph.node(node).kind == Kind::Accumulator
                && !inputs.is_empty()
                && has_deadlines(graph, node)
            {
                return true;
            }
            match inputs.as_slice() {
                [] => false,
                [edge] => {
                    let (from, _) = graph.ends(*edge);
                    graph.edge(*edge).port.is_some()
                        || graph.node(from).kind == Kind::Branch
                        || graph.main_outputs(from).len() > 1
                }
                _ => true,
            }
        };
        let inlets: Vec<NodeIndex> = graph
            .graph
            .node_indices()
            .filter(|&n| is_inlet(n))
            .collect();
        let mut segments = Vec::new();
        let mut segment_of = HashMap::new();
        for head in graph.graph.node_indices() {
            let starts = graph.inputs(head).is_empty() || is_inlet(head);
            if !starts {
                continue;
            }
            let mut nodes = vec![head];
            let mut inner = Vec::new();
            let mut current = head;
            while graph.node(current).kind != Kind::Branch {
                let next = match diamonds.get(&current) {
                    Some(diamond) => {
                        inner.extend(diamond.branches.iter().flatten().copied());
                        diamond.merge
                    }
                    None => {
                        let outputs = graph.main_outputs(current);
                        let [edge] = outputs.as_slice() else { break };
                        graph.ends(*edge).1
                    }
                };
                if is_inlet(next) || nodes.contains(&next) {
                    break;
                }
                nodes.push(next);
                current = next;
            }
            for &node in nodes.iter().chain(&inner) {
                segment_of.insert(node, segments.len());
            }
            segments.push(Segment {
                nodes,
                inlet: !graph.inputs(head).is_empty(),
            });
        }
        Wiring {
            graph,
            diamonds,
            segments,
            segment_of,
            inlets,
            typed: RefCell::new(HashSet::new()),
        }
    }

    /// The segments whose outputs feed segment `index`.
    fn dependencies(&self, index: usize) -> Vec<usize> {
        let segment = &self.segments[index];
        if !segment.inlet {
            return Vec::new();
        }
        self.graph
            .inputs(segment.nodes[0])
            .into_iter()
            .filter_map(|edge| self.segment_of.get(&self.graph.ends(edge).0).copied())
            .collect()
    }

    /// Segments in an order where each comes after those it depends on;
    /// segments on a cycle are left out.
    fn segment_order(&self) -> Vec<usize> {
        let mut order = Vec::new();
        let mut placed = HashSet::new();
        loop {
            let before = order.len();
            for index in 0..self.segments.len() {
                if !placed.contains(&index)
                    && self.dependencies(index).iter().all(|d| placed.contains(d))
                {
                    placed.insert(index);
                    order.push(index);
                }
            }
            if order.len() == before {
                return order;
            }
        }
    }

    fn stats_var(&self, node: NodeIndex) -> syn::Ident {
        format_ident!(
            "__pipeline_stats_{}",
            node.index(),
            span = Span::mixed_site()
        )
    }

    fn edge_var(&self, edge: EdgeIndex) -> syn::Ident {
        format_ident!(
            "__pipeline_edge_{}",
            edge.index(),
            span = Span::mixed_site()
        )
    }

    fn sender_var(&self, inlet: NodeIndex) -> syn::Ident {
        format_ident!("__pipeline_tx_{}", inlet.index(), span = Span::mixed_site())
    }

    fn receiver_var(&self, inlet: NodeIndex) -> syn::Ident {
        format_ident!("__pipeline_rx_{}", inlet.index(), span = Span::mixed_site())
    }

    fn stats_vars(&self) -> Vec<syn::Ident> {
        self.graph
            .graph
            .node_indices()
            .map(|n| self.stats_var(n))
            .collect()
    }

    fn edge_vars(&self) -> Vec<syn::Ident> {
        self.graph
            .graph
            .edge_indices()
            .map(|e| self.edge_var(e))
            .collect()
    }

    fn channel_senders(&self) -> Vec<syn::Ident> {
        self.inlets.iter().map(|&n| self.sender_var(n)).collect()
    }

    /// The node's role at run time.
    fn runtime_kind(&self, node: NodeIndex) -> TokenStream {
        let graph = self.graph;
        let kind = match graph.node(node).kind {
            _ if graph.inputs(node).is_empty() => quote!(Source),
            Kind::Branch => quote!(Branch),
            Kind::Accumulator => quote!(Accumulator),
            _ if graph.main_outputs(node).is_empty() => quote!(Sink),
            _ => quote!(Transform),
        };
        let private = private_path();
        quote!(#private::NodeKind::#kind)
    }

    /// Counters for every node and edge, and a channel for every inlet.
    fn setup_code(&self) -> TokenStream {
        let private = private_path();
        let graph = self.graph;
        let mut code = TokenStream::new();
        for node in graph.graph.node_indices() {
            let var = self.stats_var(node);
            let name = &graph.node(node).name;
            let kind = self.runtime_kind(node);
            code.extend(quote! { let #var = #private::stats(#name, #kind); });
        }
        for edge in graph.graph.edge_indices() {
            let var = self.edge_var(edge);
            let (from, to) = graph.ends(edge);
            let from = &graph.node(from).name;
            let to = &graph.node(to).name;
            let port = match &graph.edge(edge).port {
                Some(port) => {
                    let port = port.to_string();
                    quote!(::std::option::Option::Some(#port))
                }
                None => quote!(::std::option::Option::None),
            };
            let (_, target) = graph.ends(edge);
            // An edge into a segment's first node is a channel; any other
            // edge into a segment is a direct call.
            let fused = self
                .segment_of
                .get(&target)
                .is_some_and(|&segment| self.segments[segment].nodes.first() != Some(&target));
            let into_diamond_merge = self.diamonds.values().any(|d| d.ends.contains(&edge));
            if into_diamond_merge {
                let (source, _) = graph.ends(edge);
                let from_stats = self.stats_var(source);
                code.extend(quote! { let #var = #private::merge_edge_stats(&#from_stats, #to); });
            } else if fused {
                let into = self.stats_var(target);
                code.extend(quote! { let #var = #private::fused_edge_stats(#from, &#into); });
            } else {
                code.extend(quote! { let #var = #private::edge_stats(#from, #to, #port); });
            }
        }
        for &inlet in &self.inlets {
            let tx = self.sender_var(inlet);
            let rx = self.receiver_var(inlet);
            let options = self.options_of(inlet);
            code.extend(quote! {
                let (#tx, #rx) = #private::edge_for::<_>(&#options, #private::DEFAULT_CHUNK);
            });
        }
        code
    }

    /// A node's options as the runtime sees them: its own, else its
    /// `#[stage(..)]`'s defaults (known from the type of a bare-named
    /// stage), else the pipeline's.
    fn options_of(&self, node: NodeIndex) -> TokenStream {
        let private = private_path();
        let errors_connected = !self.graph.port_outputs(node, "errors").is_empty();
        let own = self
            .graph
            .node(node)
            .ir
            .options
            .to_runtime(errors_connected);
        let pipeline = self.graph.options.to_runtime(errors_connected);
        match self.stage_type(node) {
            Some(ty) => quote! {
                {
                    #[allow(unused_imports)]
                    use #private::{HasDefaults as _, NoDefaults as _};
                    #own.or((&#private::DefaultsOf::<#ty>::new()).stage_defaults()).or(#pipeline)
                }
            },
            None => quote!(#own.or(#pipeline)),
        }
    }

    /// One segment: its chain, then a closure that drives it.
    fn segment_code(&self, index: usize) -> TokenStream {
        let graph = self.graph;
        let segment = &self.segments[index];
        let chain = local("__pipeline_chain", Span::call_site());
        let mut code = TokenStream::new();
        let mut stages = segment.nodes.as_slice();
        if segment.inlet {
            let head = segment.nodes[0];
            if graph.node(head).kind == Kind::Accumulator {
                code.extend(self.accumulate_code(head, Intake::Edge));
                stages = &stages[1..];
            } else if self.is_parallel(head) {
                code.extend(
                    self.parallel_code(head, head == *segment.nodes.last().unwrap_or(&head)),
                );
                stages = &stages[1..];
            } else {
                let rx = self.receiver_var(head);
                let private = private_path();
                code.extend(quote! {
                    let #chain = #private::inlet(#rx, #private::DEFAULT_CHUNK);
                });
            }
        } else {
            let head = segment.nodes[0];
            code.extend(self.head_code(head));
            stages = &stages[1..];
        }
        let head = segment.nodes[0];
        if stages.first() != Some(&head) {
            code.extend(self.diamond_code(head));
        }
        let last = *segment.nodes.last().unwrap_or(&segment.nodes[0]);
        let composed = self.composed_runs(stages);
        let mut units = 0;
        for (i, &node) in stages.iter().enumerate() {
            if graph.node(node).kind == Kind::Branch {
                break;
            }
            match composed[i] {
                Composing::No => code.extend(self.stage_code(node, node == last)),
                Composing::Starts => code.extend(self.compose_code(node, false)),
                Composing::Continues => code.extend(self.compose_code(node, true)),
            }
            code.extend(self.diamond_code(node));
            // A long chain's pull future nests once per stage (a composed
            // run counts once); a box every few stages keeps rustc's layout
            // query within its depth limit.
            if composed.get(i + 1) != Some(&Composing::Continues) {
                units += 1;
                if units % BOX_EVERY == 0 && node != last {
                    let chain = local("__pipeline_chain", Span::call_site());
                    let private = private_path();
                    code.extend(quote! { let #chain = #private::boxed(#chain); });
                }
            }
        }
        code.extend(self.tail_code(last));
        code
    }

    /// If `fanout` heads a diamond: its branches, each on its own copy of
    /// the chain's chunks, merged back into one chain.
    fn diamond_code(&self, fanout: NodeIndex) -> TokenStream {
        let Some(diamond) = self.diamonds.get(&fanout) else {
            return TokenStream::new();
        };
        let graph = self.graph;
        let private = private_path();
        let chain = local("__pipeline_chain", Span::call_site());
        let up = local("__pipeline_up", Span::call_site());
        let mut code = quote! { let #up = #chain; };
        let vars: Vec<syn::Ident> = (0..diamond.branches.len())
            .map(|i| local(&format!("__pipeline_branch_{i}"), Span::call_site()))
            .collect();
        for (i, branch) in diamond.branches.iter().enumerate() {
            let var = &vars[i];
            let mut body = quote! { let #chain = #private::feed(&#up); };
            for &node in branch {
                body.extend(self.stage_code(node, false));
            }
            code.extend(quote! { let #var = { #body #chain }; });
            if i > 0 {
                // The merge's type check, at this branch's edge into it.
                let span = first_span(&graph.edge(diamond.ends[i]).target);
                let here = Span::mixed_site().located_at(span);
                let private_here = private_path_at(here);
                let first = &vars[0];
                code.extend(quote_spanned! {here=>
                    let #var = #private_here::merged_branch(&#first, #var);
                });
            }
        }
        let list = nested_tuple(&vars);
        // The fan-out's `Clone` check, at its second edge.
        let span = diamond
            .starts
            .get(1)
            .map_or_else(Span::call_site, |&e| first_span(&graph.edge(e).target));
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        code.extend(quote_spanned! {here=>
            let #chain = #private_here::diamond(#up, #list);
        });
        quote! { let #chain = { #code #chain }; }
    }

    /// The stages of segment `index` before its first node with an error,
    /// and those nodes.
    fn prefix_code(&self, index: usize, verdict: &Verdict) -> (TokenStream, Vec<NodeIndex>) {
        let graph = self.graph;
        let segment = &self.segments[index];
        let chain = local("__pipeline_chain", Span::call_site());
        let mut code = TokenStream::new();
        let mut nodes = Vec::new();
        let mut stages = segment.nodes.as_slice();
        let head = segment.nodes[0];
        if segment.inlet && graph.node(head).kind == Kind::Accumulator {
            if !verdict.ok(head) {
                return (TokenStream::new(), nodes);
            }
            code.extend(self.accumulate_code(head, Intake::Edge));
            nodes.push(head);
            stages = &stages[1..];
        } else if segment.inlet && self.is_parallel(head) {
            if !verdict.ok(head) {
                return (TokenStream::new(), nodes);
            }
            code.extend(self.parallel_code(head, false));
            nodes.push(head);
            stages = &stages[1..];
        } else if segment.inlet {
            let rx = self.receiver_var(head);
            let private = private_path();
            code.extend(quote! {
                let #chain = #private::inlet(#rx, #private::DEFAULT_CHUNK);
            });
        } else {
            if !verdict.ok(head) {
                return (TokenStream::new(), nodes);
            }
            code.extend(self.head_code(head));
            nodes.push(head);
            stages = &stages[1..];
        }
        if stages.first() != Some(&head) && nodes.contains(&head) {
            if self.diamond_ok(head, verdict) {
                code.extend(self.diamond_code(head));
            } else if self.diamonds.contains_key(&head) {
                stages = &[];
            }
        }
        for &node in stages {
            if !verdict.ok(node) || graph.node(node).kind == Kind::Branch {
                break;
            }
            code.extend(self.stage_code(node, false));
            nodes.push(node);
            if self.diamonds.contains_key(&node) {
                if !self.diamond_ok(node, verdict) {
                    break;
                }
                code.extend(self.diamond_code(node));
            }
        }
        code.extend(quote! { let _ = &#chain; });
        (code, nodes)
    }

    /// An accumulate node, at the head of its segment or fused after the
    /// chain before it: the accumulator, its policy (checked and converted
    /// at compile time), and its `errors` port if connected.
    fn accumulate_code(&self, node: NodeIndex, intake: Intake) -> TokenStream {
        let graph = self.graph;
        let ir = &graph.node(node).ir;
        let Some(spec) = ir.builtin().and_then(|call| call.spec()) else {
            return quote!();
        };
        let span = ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let private = private_path();
        let chain = local("__pipeline_chain", span);
        let accumulator = local("__pipeline_accumulator", span);
        // What the accumulation reads: its edge, or the chain before it;
        // and something that tells its item type either way.
        let (input, suffix) = match intake {
            Intake::Edge => (local(&self.receiver_var(node).to_string(), span), ""),
            Intake::Chain => (chain.clone(), "_after"),
        };
        let typed = match intake {
            Intake::Edge => quote_spanned!(here=> &#private_here::edge_type(&#input)),
            Intake::Chain => quote!(&#input),
        };
        let named = |name: &str| syn::Ident::new(&format!("{name}{suffix}"), here);
        let stats = local(&self.stats_var(node).to_string(), span);
        let collector = match &spec.collector {
            fields::Collector::Key(key) => {
                quote_spanned!(here=> #private_here::batch_by(#typed, #key))
            }
            fields::Collector::Unkeyed => {
                quote_spanned!(here=> #private_here::batch_all(#typed))
            }
            fields::Collector::Value(value) => quote!(#value),
        };
        let size = match (&spec.size, spec.max_bytes) {
            (Some(size), _) => quote!(#size),
            (None, Some(_)) => {
                quote_spanned!(here=> |item| #private_here::item_bytes(item))
            }
            (None, None) => quote! {
                |item| {
                    #[allow(unused_imports)]
                    use #private::{MeasureBytes as _, MeasureSize as _};
                    (&#private::Measure(item)).bytes()
                }
            },
        };
        let some_usize = |v: Option<u64>| match v {
            Some(v) => {
                let v = v as usize;
                quote!(::std::option::Option::Some(#v))
            }
            None => quote!(::std::option::Option::None),
        };
        let some_u64 = |v: Option<u64>| match v {
            Some(v) => quote!(::std::option::Option::Some(#v)),
            None => quote!(::std::option::Option::None),
        };
        let some_duration = |v: Option<u64>| match v {
            Some(v) => quote!(::std::option::Option::Some(#private::Duration::from_nanos(#v))),
            None => quote!(::std::option::Option::None),
        };
        let max_items = some_usize(spec.max_items);
        let max_bytes = some_u64(spec.max_bytes);
        let max_latency = some_duration(spec.max_latency);
        let ttl = some_duration(spec.ttl);
        let partial_flush = spec.partial_flush;
        let (spill, function) = match &spec.spill {
            Some(dir) => {
                let max_memory = spec.max_memory.unwrap_or(64 << 20);
                let dir = match dir {
                    // At the directory's tokens, where rustc reports one
                    // that is not `Into<PathBuf>`.
                    Some(dir) => {
                        let at = Span::mixed_site().located_at(syn::spanned::Spanned::span(dir));
                        let private_at = private_path_at(at);
                        quote_spanned!(at=> ::std::option::Option::Some(#private_at::SpillDir::spill_dir(#dir)))
                    }
                    None => quote!(::std::option::Option::None),
                };
                (
                    quote!(::std::option::Option::Some(#private::SpillPolicy { max_memory: #max_memory, dir: #dir })),
                    named("accumulate_spilling"),
                )
            }
            None => (quote!(::std::option::Option::None), named("accumulate")),
        };
        let mut code = quote! {
            let #accumulator = #collector;
        };
        if spec.size.is_none()
            && spec.max_bytes.is_none()
            && !matches!(spec.collector, fields::Collector::Value(_))
        {
            // Items measured by their in-memory size all weigh the same:
            // their batches need not keep a byte total.
            code.extend(quote! {
                let #accumulator = {
                    #[allow(unused_imports)]
                    use #private::{TallyBytes as _, TallyFixed as _};
                    (&#private::tally(#typed)).tally(#accumulator)
                };
            });
        }
        code.extend(quote_spanned! {here=>
            let #chain = #private_here::#function(
                #input,
                #accumulator,
                #size,
                #private::AccumulatePolicy {
                    max_items: #max_items,
                    max_bytes: #max_bytes,
                    max_latency: #max_latency,
                    ttl: #ttl,
                    partial_flush: #partial_flush,
                    spill: #spill,
                },
                ::std::sync::Arc::clone(&#stats),
                #private_here::DEFAULT_CHUNK,
            );
        });
        if let Some(broadcast) = self.errors_broadcast(node) {
            code.extend(quote_spanned! {here=>
                let #chain = #private_here::accumulate_errors(#chain, #broadcast);
            });
        }
        code
    }

    fn is_parallel(&self, node: NodeIndex) -> bool {
        runs_on_workers(self.graph, node)
    }

    /// A `parallel` node at the head of its segment: its workers read from
    /// the node's edge.
    fn parallel_code(&self, node: NodeIndex, is_last: bool) -> TokenStream {
        let graph = self.graph;
        let span = graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let private = private_path();
        let chain = local("__pipeline_chain", span);
        let stage = local("__pipeline_stage", span);
        let options_var = local("__pipeline_options", span);
        let rx = local(&self.receiver_var(node).to_string(), span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = self.stage_expr(node);
        let options = self.options_of(node);
        let key = crate::options::by_key(&graph.node(node).ir.options);
        let mut code = quote! {
            let #chain = #private::edge_type(&#rx);
            let #options_var: #private::options::StageOptions = #options;
        };
        code.extend(quote_spanned! {here=> let #stage = #expr; });
        if is_last && graph.main_outputs(node).is_empty() {
            code.extend(quote_spanned! {here=> #private_here::ends_in_sink(&#stage); });
        }
        // The stage, its input, output and error must move to other
        // threads: checked once, here, with a message naming what cannot.
        // After a failed check the stage and its edge have an unknown type,
        // so nothing built with them repeats the error.
        let rx_checked = local("__pipeline_rx", span);
        // The messages name the stage: a `#[stage]` or other stage value
        // by its type, a built-in by its name as written (a local marker
        // type, rather than the runtime type behind it).
        let name = match graph.node(node).ir.builtin() {
            Some(call) => {
                let marker = syn::Ident::new(call.op.name, span);
                quote_spanned! {here=> {
                    #[allow(non_camel_case_types, dead_code)]
                    struct #marker;
                    ::core::marker::PhantomData::<#marker>
                }}
            }
            _ => quote_spanned! {here=> stage },
        };
        code.extend(quote_spanned! {here=>
            let (#rx_checked, #stage) = {
                let input = #private_here::item_of(&#rx);
                let stage = #private_here::type_of(&#stage);
                let name = #name;
                let checked = #private_here::WorkerInput::checked(name, input, (#rx, #stage));
                let checked = #private_here::WorkerStage::checked(name, stage, checked);
                let (output, error) = #private_here::outputs_of(input, &checked.1);
                let checked = #private_here::WorkerOutput::checked(name, output, checked);
                #private_here::WorkerError::checked(name, error, checked)
            };
        });
        // Spawning is written here, where the stage's type is known, so
        // rustc can check that its futures may move to another thread.
        let spawn = quote_spanned! {here=>
            |worker| {
                let stage = #private_here::stage_of(&worker);
                #private_here::SpawnsWorker::spawn(stage, #private_here::Worker::run(worker))
            }
        };
        let call = match key {
            Some(key) => {
                let key_var = local("__pipeline_key", span);
                let key_here = Span::mixed_site().located_at(syn::spanned::Spanned::span(&key));
                let private_key = private_path_at(key_here);
                code.extend(quote_spanned! {key_here=>
                    let #key_var = #private_key::key_for(#private_key::item_of(&#rx_checked), #key);
                    let #key_var = #private_key::WorkerKey::checked(#private_key::key_fn(&#key_var), #key_var);
                });
                quote_spanned! {here=>
                    #private_here::parallel_by_key(#rx_checked, #stage, #spawn, #options_var, #key_var, ::std::sync::Arc::clone(&#stats))
                }
            }
            None => quote_spanned! {here=>
                #private_here::parallel(#rx_checked, #stage, #spawn, #options_var, ::std::sync::Arc::clone(&#stats))
            },
        };
        code.extend(quote_spanned! {here=> let #chain = #call; });
        if let Some(broadcast) = self.errors_broadcast(node) {
            let errors_var = local("__pipeline_errors", span);
            code.extend(quote! { let #errors_var = #broadcast; });
            code.extend(quote_spanned! {here=>
                let #chain = #private_here::parallel_with_errors(#chain, #options_var, #errors_var);
            });
        } else {
            if self.retries(node) {
                code.extend(quote_spanned! {here=>
                    let #chain = #private_here::parallel_retrying(#chain, #options_var);
                });
            } else {
                let cloner = self.input_cloner(node);
                code.extend(quote_spanned! {here=>
                    let #chain = #private_here::parallel_options(#chain, #options_var, #cloner);
                });
            }
        }
        code
    }

    /// How a node's stage copies its input if its `#[stage(..)]` defaults
    /// retry: known from the type of a bare-named stage, else `None`.
    fn input_cloner(&self, node: NodeIndex) -> TokenStream {
        let private = private_path();
        match self.stage_type(node) {
            Some(ty) => quote! {
                {
                    #[allow(unused_imports)]
                    use #private::{HasCloner as _, NoCloner as _};
                    (&#private::DefaultsOf::<#ty>::new()).input_cloner()
                }
            },
            None => quote!(::std::option::Option::None),
        }
    }

    /// The type of a bare-named stage (a `#[stage]` item), whose defaults
    /// can be looked up.
    fn stage_type(&self, node: NodeIndex) -> Option<TokenStream> {
        match &self.graph.node(node).ir.op {
            Op::Name(ident) => Some(quote!(#ident)),
            Op::Path(path) => Some(quote!(#path)),
            _ => None,
        }
    }

    /// Whether every node of the diamond `fanout` heads is free of errors,
    /// so its code can be emitted as a prefix.
    fn diamond_ok(&self, fanout: NodeIndex, verdict: &Verdict) -> bool {
        self.diamonds
            .get(&fanout)
            .is_some_and(|d| d.branches.iter().flatten().all(|&n| verdict.ok(n)))
    }

    /// A bare-named stage after the chain: fused to it, or on workers
    /// behind an edge if its `#[stage(parallel = ..)]` defaults say so,
    /// which only its type knows.
    fn attach_code(&self, node: NodeIndex, ty: &TokenStream, retries: bool) -> TokenStream {
        let graph = self.graph;
        let span = graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let private = private_path();
        let stage = local("__pipeline_stage", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let options_var = local("__pipeline_options", span);
        let mut code = TokenStream::new();
        let route = match self.errors_broadcast(node) {
            Some(broadcast) => {
                let errors_var = local("__pipeline_errors", span);
                code.extend(quote! { let #errors_var = #broadcast; });
                quote_spanned!(here=> #private_here::errors_route(&#chain, #errors_var))
            }
            None => quote!(#private::LogFailures),
        };
        let cloner = if retries {
            quote_spanned!(here=> #private_here::retry_input_cloner(&#chain))
        } else {
            self.input_cloner(node)
        };
        let edge = match self.fused_input(node) {
            Some(edge) => {
                let edge = self.edge_var(edge);
                quote!(&#edge)
            }
            // Already behind an edge of its own: a hop to workers is one
            // more, counted apart.
            None => {
                let name = &graph.node(node).name;
                quote!(&::std::sync::Arc::new(#private::EdgeStats::new(#name, #name, ::std::option::Option::None)))
            }
        };
        code.extend(quote_spanned! {here=>
            let (#chain, #stage) = #private_here::checked_stage(#chain, #stage);
        });
        let route_var = local("__pipeline_route", span);
        let cloner_var = local("__pipeline_cloner", span);
        code.extend(quote! {
            let #route_var = #route;
            let #cloner_var = #cloner;
        });
        code.extend(quote_spanned! {here=>
            let #chain = {
                #[allow(unused_imports)]
                use #private_here::{AttachFused as _, AttachOnWorkers as _};
                (&#private_here::DefaultsOf::<#ty>::new()).attach(
                    #chain,
                    #stage,
                    ::std::sync::Arc::clone(&#stats),
                    #options_var,
                    #route_var,
                    #cloner_var,
                    |chain, output, control| #private::drive_into(chain, output, control),
                    #edge,
                )
            };
        });
        code
    }

    /// The one edge into `node` if it is fused to the node before it.
    fn fused_input(&self, node: NodeIndex) -> Option<EdgeIndex> {
        let first_of_segment = self
            .segment_of
            .get(&node)
            .is_none_or(|&segment| self.segments[segment].nodes.first() == Some(&node));
        match self.graph.inputs(node).as_slice() {
            [edge] if !first_of_segment => Some(*edge),
            _ => None,
        }
    }

    /// For a bare-named stage fused to the stage before it: an edge there
    /// after all if its `#[stage(..)]` defaults ask for one (`buffer`,
    /// `on_full`, `backpressure`), which only its type knows.
    fn hop_code(&self, node: NodeIndex) -> TokenStream {
        let Some(ty) = self.stage_type(node) else {
            return TokenStream::new();
        };
        let Some(edge) = self.fused_input(node) else {
            return TokenStream::new();
        };
        let private = private_path();
        let chain = local("__pipeline_chain", Span::call_site());
        let edge = self.edge_var(edge);
        let options = self.options_of(node);
        quote! {
            let #chain = {
                #[allow(unused_imports)]
                use #private::{HopBefore as _, NoHop as _};
                let options: #private::options::StageOptions = #options;
                (&#private::DefaultsOf::<#ty>::new()).hop(
                    #chain,
                    |chain, output, control| #private::drive_into(chain, output, control),
                    &options,
                    &#edge,
                )
            };
        }
    }

    /// Whether the node's options, its own or the pipeline's, retry failed
    /// items.
    fn retries(&self, node: NodeIndex) -> bool {
        let own = &self.graph.node(node).ir.options;
        own.retries() || (self.graph.options.retries() && own.on_error.is_none())
    }

    fn head_code(&self, node: NodeIndex) -> TokenStream {
        let span = self.graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let source = local("__pipeline_source", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = head_expr(self.graph.node(node), &self.emit_context(node));
        let mut code = quote_spanned! {here=>
            let #source = #expr;
            let #chain = #private_here::head(#source, ::std::sync::Arc::clone(&#stats), #private_here::DEFAULT_CHUNK);
        };
        if self.long_chunks(node) {
            let private = private_path();
            code.extend(quote! { let #chain = #private::long_chunks(#chain); });
        }
        code
    }

    /// Whether the head of `node`'s segment reads long chunks
    /// (`Head::with_long_chunks`): when nothing but cheap built-ins
    /// (`map`, `filter`, `filter_map`, `inspect`) follow it, up to a fused
    /// accumulation or a composed `for_each` that ends the segment. Such a
    /// chain does little per item, and reading its input in longer runs
    /// was measured to pay (`BENCHMARKS.md`); a stage of the user's, an
    /// async one or an edge after it keeps chunks of 512.
    fn long_chunks(&self, head: NodeIndex) -> bool {
        let Some(&index) = self.segment_of.get(&head) else {
            return false;
        };
        let nodes = &self.segments[index].nodes;
        if nodes.iter().any(|node| self.diamonds.contains_key(node)) {
            return false;
        }
        for (i, &node) in nodes.iter().enumerate().skip(1) {
            if self.graph.node(node).kind == Kind::Accumulator {
                return true;
            }
            if !self.composable(node) {
                return false;
            }
            if i + 1 == nodes.len() {
                return self.graph.node(node).kind == Kind::Sink;
            }
        }
        false
    }

    /// Whether each of `stages` is composed with its neighbours into one
    /// pass: runs of two or more adjacent synchronous built-ins (`map`,
    /// `filter`, `filter_map`, `inspect`, and a synchronous `for_each` at
    /// the end) with no options, no `errors` port and no diamond between
    /// them.
    fn composed_runs(&self, stages: &[NodeIndex]) -> Vec<Composing> {
        let composable: Vec<bool> = stages.iter().map(|&n| self.composable(n)).collect();
        // Whether stage `i` may continue the run of the stage before it.
        let joins = |i: usize| {
            i > 0
                && composable[i]
                && composable[i - 1]
                && !self.diamonds.contains_key(&stages[i - 1])
        };
        let mut runs = vec![Composing::No; stages.len()];
        let mut length = 0;
        for (i, run) in runs.iter_mut().enumerate() {
            // A run holds at most `MAX_STEPS` (16) stages; a longer one is
            // cut in two.
            if joins(i) && length > 0 && length < COMPOSE_MAX {
                *run = Composing::Continues;
                length += 1;
            } else if i + 1 < stages.len() && joins(i + 1) {
                *run = Composing::Starts;
                length = 1;
            } else {
                length = 0;
            }
        }
        runs
    }

    /// Whether `node` is a synchronous built-in that can be composed into
    /// one pass with the ones next to it.
    fn composable(&self, node: NodeIndex) -> bool {
        let graph = self.graph;
        let Some(call) = graph.node(node).ir.builtin() else {
            return false;
        };
        (call.op.composable)(call)
            && graph.node(node).ir.options.is_empty()
            && graph.options.is_empty()
            && graph.port_outputs(node, "errors").is_empty()
            && !self.is_parallel(node)
    }

    /// `chain >> node` for a node of a composed run: the first of the run,
    /// or one more (`continues`).
    fn compose_code(&self, node: NodeIndex, continues: bool) -> TokenStream {
        let span = self.graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let stage = local("__pipeline_stage", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = self.stage_expr(node);
        let function = if continues {
            quote_spanned!(here=> compose_next)
        } else {
            quote_spanned!(here=> compose)
        };
        quote_spanned! {here=>
            let #stage = #expr;
            let #chain = #private_here::#function(#chain, #stage, ::std::sync::Arc::clone(&#stats));
        }
    }

    /// `chain >> node`, with the node's `errors` port if it is connected.
    fn stage_code(&self, node: NodeIndex, is_last: bool) -> TokenStream {
        let graph = self.graph;
        if graph.node(node).kind == Kind::Accumulator {
            return self.accumulate_code(node, Intake::Chain);
        }
        if let Some(call) = graph.node(node).ir.builtin()
            && call.op.wraps_chain
        {
            // Not a stage: it keeps emitting after its input ends, so it
            // wraps the chain before it.
            let span = graph.node(node).ir.span();
            let here = Span::mixed_site().located_at(span);
            let chain = local("__pipeline_chain", span);
            let wrapped = (call.op.emit)(call, &self.emit_context(node));
            return quote_spanned! {here=> let #chain = #wrapped; };
        }
        let span = graph.node(node).ir.span();
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let stage = local("__pipeline_stage", span);
        let chain = local("__pipeline_chain", span);
        let stats = local(&self.stats_var(node).to_string(), span);
        let expr = self.stage_expr(node);
        let mut code = quote_spanned! {here=> let #stage = #expr; };
        if is_last && graph.main_outputs(node).is_empty() {
            code.extend(quote_spanned! {here=> #private_here::ends_in_sink(&#stage); });
        }
        code.extend(self.hop_code(node));
        let errors = graph.port_outputs(node, "errors");
        let retries = self.retries(node);
        let has_options = !graph.node(node).ir.options.is_empty()
            || !graph.options.is_empty()
            || matches!(graph.node(node).ir.op, Op::Name(_) | Op::Path(_));
        let options_var = local("__pipeline_options", span);
        if has_options || !errors.is_empty() {
            let options = self.options_of(node);
            code.extend(quote! {
                let #options_var: ::pipeline::__private::options::StageOptions = #options;
            });
        }
        if let Some(ty) = self.stage_type(node) {
            code.extend(self.attach_code(node, &ty, retries));
        } else if errors.is_empty() {
            let function = match (retries, has_options) {
                (true, _) => quote_spanned!(here=> fuse_retrying),
                (false, true) => quote_spanned!(here=> fuse_with_options),
                (false, false) => quote_spanned!(here=> fuse),
            };
            let cloner = match (retries, has_options) {
                (false, true) => {
                    let cloner = self.input_cloner(node);
                    quote_spanned!(here=> , #cloner)
                }
                _ => quote!(),
            };
            let options_arg = has_options.then(|| quote_spanned!(here=> , #options_var #cloner));
            code.extend(quote_spanned! {here=>
                let #chain = #private_here::#function(#chain, #stage, ::std::sync::Arc::clone(&#stats) #options_arg);
            });
        } else if let Some(broadcast) = self.errors_broadcast(node) {
            let errors_var = local("__pipeline_errors", span);
            code.extend(quote! { let #errors_var = #broadcast; });
            code.extend(quote_spanned! {here=>
                let #chain = #private_here::fuse_with_errors(#chain, #stage, ::std::sync::Arc::clone(&#stats), #options_var, #errors_var);
            });
        }
        code
    }

    /// Sends to one edge, or clones to several (checked at the second).
    fn broadcast(
        &self,
        edges: &[EdgeIndex],
        outputs: Vec<TokenStream>,
        fallback: Span,
    ) -> TokenStream {
        if let [output] = outputs.as_slice() {
            let private = private_path();
            return quote!(#private::single(#output));
        }
        let span = edges
            .get(1)
            .map(|&e| first_span(&self.graph.edge(e).target))
            .unwrap_or(fallback);
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        quote_spanned!(here=> #private_here::fan_out(::std::vec![#(#outputs),*]))
    }

    /// Where a node's `errors` port sends, if it is connected: one edge, or
    /// a clone to each of several.
    fn errors_broadcast(&self, node: NodeIndex) -> Option<TokenStream> {
        let graph = self.graph;
        let edges = graph.port_outputs(node, "errors");
        if edges.is_empty() {
            return None;
        }
        let private = private_path();
        let outputs = edges
            .iter()
            .map(|&edge| {
                let (_, to) = graph.ends(edge);
                let tx = self.sender_var(to);
                let stats = self.edge_var(edge);
                quote!(#private::port_output(::std::clone::Clone::clone(&#tx), ::std::sync::Arc::clone(&#stats)))
            })
            .collect();
        Some(self.broadcast(&edges, outputs, graph.node(node).ir.span()))
    }

    /// The edge `edge` out of a chain emitting what `chain` emits; checked
    /// for a merge of different types at the edge's target.
    fn output(&self, edge: EdgeIndex) -> TokenStream {
        let graph = self.graph;
        let (_, to) = graph.ends(edge);
        let span = first_span(&graph.edge(edge).target);
        let here = Span::mixed_site().located_at(span);
        let private_here = private_path_at(here);
        let chain = local("__pipeline_chain", span);
        let tx = local(&self.sender_var(to).to_string(), span);
        let stats = local(&self.edge_var(edge).to_string(), span);
        let function = if self.typed.borrow_mut().insert(to) {
            quote_spanned!(here=> first_output)
        } else {
            quote_spanned!(here=> output)
        };
        quote_spanned! {here=>
            #private_here::#function(#private_here::marker(&#chain), ::std::clone::Clone::clone(&#tx), ::std::sync::Arc::clone(&#stats))
        }
    }

    /// How the segment's output leaves it, and the closure that runs it.
    fn tail_code(&self, last: NodeIndex) -> TokenStream {
        let graph = self.graph;
        let private = private_path();
        let chain = local("__pipeline_chain", Span::call_site());
        let outlet = local("__pipeline_outlet", Span::call_site());
        let control = local("__pipeline_control", Span::call_site());
        let node = graph.node(last);
        if node.kind == Kind::Branch {
            let Some(call) = node.ir.builtin() else {
                return quote!();
            };
            let pick = call.call.args.first();
            let ports: Vec<TokenStream> = node
                .ports
                .iter()
                .map(|port| {
                    let edges = graph.port_outputs(last, &port.to_string());
                    let outputs = edges.iter().map(|&e| self.output(e)).collect();
                    self.broadcast(&edges, outputs, port.span())
                })
                .collect();
            let span = node.ir.span();
            let here = Span::mixed_site().located_at(span);
            let private_here = private_path_at(here);
            let chain_here = local("__pipeline_chain", span);
            let stats = local(&self.stats_var(last).to_string(), span);
            return quote! {
                let #outlet = #private_here::route(
                    #private_here::marker(&#chain_here),
                    #pick,
                    [#(#ports),*],
                    ::std::sync::Arc::clone(&#stats),
                );
                move |#control: #private::Control| #private::drive_into(#chain, #outlet, #control)
            };
        }
        let edges = graph.main_outputs(last);
        if edges.is_empty() {
            return quote! {
                move |#control: #private::Control| #private::drive(#chain, #control)
            };
        }
        let outputs = edges.iter().map(|&e| self.output(e)).collect();
        let broadcast = self.broadcast(&edges, outputs, node.ir.span());
        quote! {
            let #outlet = #broadcast;
            move |#control: #private::Control| #private::drive_into(#chain, #outlet, #control)
        }
    }

    /// The expression that makes a node's stage.
    fn stage_expr(&self, node: NodeIndex) -> TokenStream {
        stage_expr(self.graph.node(node), &self.emit_context(node))
    }

    /// The locals an operator's code refers to.
    fn emit_context(&self, node: NodeIndex) -> crate::ops::Emit {
        let span = self.graph.node(node).ir.span();
        crate::ops::Emit {
            chain: local("__pipeline_chain", span),
            stats: local(&self.stats_var(node).to_string(), span),
        }
    }

    /// `Pipeline::graph()`: the nodes and edges as the macro saw them, with
    /// a merge node wherever several chains feed one node.
    fn description(&self) -> TokenStream {
        let private = private_path();
        let graph = self.graph;
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let position: HashMap<NodeIndex, usize> = graph
            .graph
            .node_indices()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        for index in graph.graph.node_indices() {
            let node = graph.node(index);
            let name = &node.name;
            let kind = self.runtime_kind(index);
            let mut ports: Vec<String> = node.ports.iter().map(ToString::to_string).collect();
            if !graph.port_outputs(index, "errors").is_empty() {
                ports.push("errors".to_owned());
            }
            nodes.push(graph_node(name, kind, &ports, node.ir.span()));
        }
        let mut next = nodes.len();
        for index in graph.graph.node_indices() {
            let inputs = graph.inputs(index);
            let to = position[&index];
            let mut merged = None;
            let target = if inputs.len() > 1 {
                let name = format!("merge into {}", graph.node(index).name);
                let kind = quote!(#private::NodeKind::Merge);
                nodes.push(graph_node(&name, kind, &[], graph.node(index).ir.span()));
                merged = Some(quote! {
                    #private::GraphEdge { from: #next, to: #to, port: ::std::option::Option::None }
                });
                next += 1;
                next - 1
            } else {
                to
            };
            for edge in inputs {
                let (from, _) = graph.ends(edge);
                let from = position[&from];
                let port = port_literal(graph.edge(edge).port.as_ref());
                edges.push(quote! {
                    #private::GraphEdge { from: #from, to: #target, port: #port }
                });
            }
            // A merge node's own edge follows the edges into it.
            edges.extend(merged);
        }
        quote! {
            #private::PipelineGraph::new(::std::vec![#(#nodes),*], ::std::vec![#(#edges),*])
        }
    }

    /// After an error: the expressions of nodes that were not emitted as
    /// part of a segment, so the IDE still sees them. Closures passed to
    /// builtins are left out, since without their upstream their
    /// parameter types are unknown.
    fn leftover_expressions(&self, covered: &HashSet<NodeIndex>) -> TokenStream {
        let mut code = TokenStream::new();
        for index in self.graph.graph.node_indices() {
            if covered.contains(&index) {
                continue;
            }
            let node = self.graph.node(index);
            match &node.ir.op {
                Op::Builtin(call) if matches!(call.args, Args::Io(_)) => {
                    for arg in io_arguments(&call.call) {
                        code.extend(quote! { let _ = &(#arg); });
                    }
                }
                Op::Builtin(call) => {
                    for arg in fields::code_arguments(&call.call) {
                        code.extend(quote! { let _ = &(#arg); });
                    }
                }
                Op::Value(expr) => code.extend(quote! { let _ = #expr; }),
                // At the head of a chain a name is a value (a source made
                // before the macro): used, so it draws no warning.
                Op::Name(_) | Op::Path(_) if self.graph.inputs(index).is_empty() => {
                    let value = head_expr(node, &self.emit_context(index));
                    code.extend(quote! { let _ = &#value; });
                }
                _ => {}
            }
        }
        code
    }
}

/// A `GraphNode` literal, located at the line and column of `span`.
/// Whether `node` runs on workers: its own `parallel`, or the pipeline's
/// `#![parallel = ..]`, which applies to every transform that can run on
/// workers (not `through`, not a source, sink, accumulator or branch).
fn runs_on_workers(graph: &Graph, node: NodeIndex) -> bool {
    graph.node(node).ir.options.parallel.is_some()
        || (graph.options.parallel.is_some() && graph.pipeline_parallel_applies(node))
}

/// Whether a stage is composed with its neighbours into one pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Composing {
    /// Fused on its own.
    No,
    /// The first of a composed run.
    Starts,
    /// A later stage of a composed run.
    Continues,
}

/// Where an accumulate node's items come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intake {
    /// An edge of its own, at the head of a segment.
    Edge,
    /// The chain before it, in the same segment.
    Chain,
}

/// Whether an accumulate node has a deadline to wake for (`max_latency`
/// or `ttl`); one that cannot be read is assumed to.
fn has_deadlines(graph: &Graph, node: NodeIndex) -> bool {
    match graph.node(node).ir.builtin().and_then(|call| call.spec()) {
        Some(spec) => spec.max_latency.is_some() || spec.ttl.is_some(),
        None => true,
    }
}

/// The fan-outs whose branches all merge back into one node with nothing
/// on the way that needs an edge of its own: no option on the way, no
/// accumulator, branch or parallel stage, no bare-named stage (whose
/// `#[stage(..)]` defaults might ask for an edge, which the macro cannot
/// see), and the merge node fed by these branches alone.
fn find_diamonds(graph: &Graph) -> HashMap<NodeIndex, DiamondPlan> {
    let own_edge = |node: NodeIndex| {
        graph.node(node).ir.options.needs_edge()
            || runs_on_workers(graph, node)
            || matches!(
                graph.node(node).kind,
                Kind::Accumulator | Kind::Branch | Kind::Source
            )
    };
    // A bare-named stage may hop by its defaults, and `through` drives the
    // chain before it itself: either takes its chain away from the feed.
    let bare = |node: NodeIndex| match &graph.node(node).ir.op {
        Op::Name(_) | Op::Path(_) => true,
        Op::Builtin(call) => call.op.wraps_chain,
        _ => false,
    };
    let mut diamonds = HashMap::new();
    for fanout in graph.graph.node_indices() {
        if graph.node(fanout).kind == Kind::Branch {
            continue;
        }
        let starts = graph.main_outputs(fanout);
        if starts.len() < 2 {
            continue;
        }
        let mut branches = Vec::new();
        let mut ends = Vec::new();
        let mut merge = None;
        let mut ok = true;
        for &start in &starts {
            let mut branch = Vec::new();
            let mut edge = start;
            loop {
                let (_, next) = graph.ends(edge);
                if graph.inputs(next).len() > 1 {
                    if merge.is_some_and(|m| m != next) {
                        ok = false;
                    }
                    merge = Some(next);
                    ends.push(edge);
                    break;
                }
                let outputs = graph.main_outputs(next);
                if own_edge(next) || bare(next) || branch.contains(&next) || outputs.len() != 1 {
                    ok = false;
                    break;
                }
                branch.push(next);
                edge = outputs[0];
            }
            if !ok {
                break;
            }
            branches.push(branch);
        }
        let Some(merge) = merge.filter(|_| ok) else {
            continue;
        };
        if graph.inputs(merge).len() != starts.len() || own_edge(merge) {
            continue;
        }
        diamonds.insert(
            fanout,
            DiamondPlan {
                branches,
                starts,
                ends,
                merge,
            },
        );
    }
    diamonds
}

fn graph_node(name: &str, kind: TokenStream, ports: &[String], span: Span) -> TokenStream {
    let private = private_path();
    let start = span.start();
    let (line, column) = (start.line as u32, start.column as u32 + 1);
    quote! {
        #private::GraphNode {
            name: #name,
            kind: #kind,
            ports: ::std::vec![#(#ports),*],
            line: #line,
            column: #column,
        }
    }
}

/// `Some("port")` or `None`.
fn port_literal(port: Option<&syn::Ident>) -> TokenStream {
    match port {
        Some(port) => {
            let port = port.to_string();
            quote!(::std::option::Option::Some(#port))
        }
        None => quote!(::std::option::Option::None),
    }
}

fn first_span(tokens: &TokenStream) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

/// The expression that makes the source at the head of a chain.
///
/// A bare name (or path) there is used as a value: a source made before
/// the macro (`let (orders, handle) = push(..)`, `let log = lines(file)`),
/// or a `#[stage(source)]` function, which `head` calls. Which one it is
/// only its type tells: `IntoSource` has an impl for each, told apart by
/// a marker type rustc infers.
fn head_expr(node: &Node, emit: &crate::ops::Emit) -> TokenStream {
    match &node.ir.op {
        Op::Name(ident) => quote!(#ident),
        Op::Path(path) => quote!(#path),
        _ => stage_expr(node, emit),
    }
}

/// The expression that makes a node's stage.
fn stage_expr(node: &Node, emit: &crate::ops::Emit) -> TokenStream {
    match &node.ir.op {
        // A bare name is a `#[stage]` item: the braced struct it generated.
        Op::Name(ident) => quote_spanned!(ident.span()=> #ident {}),
        Op::Path(path) => {
            let span = path
                .segments
                .last()
                .map_or_else(Span::call_site, |s| s.ident.span());
            quote_spanned!(span=> #path {})
        }
        Op::Builtin(call) => (call.op.emit)(call, emit),
        // Parentheses only set a value apart from a `#[stage]` name
        // (`>> (sink_value)`); emitted bare, so rustc does not lint them.
        Op::Value(Expr::Paren(paren)) => {
            let inner = &paren.expr;
            quote!(#inner)
        }
        Op::Value(expr) => quote!(#expr),
        // References are edges, not nodes.
        Op::Port { owner, .. } => quote!(#owner),
    }
}

/// The Rust expressions among an IO built-in's arguments (the reader,
/// the writer, an inner source's), for the IDE after an error: not the
/// literals, nor a built-in's name, which is not in scope.
fn io_arguments(call: &syn::ExprCall) -> Vec<TokenStream> {
    call.args
        .iter()
        .flat_map(|arg| match arg {
            Expr::Assign(_) | Expr::Lit(_) | Expr::Closure(_) => Vec::new(),
            Expr::Call(inner) if crate::ops::operator_of(inner).is_some() => io_arguments(inner),
            other => vec![other.to_token_stream()],
        })
        .collect()
}
