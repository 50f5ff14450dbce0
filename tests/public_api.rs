//! The public API of `pipeline`: every path its docs promise, named here
//! by the path a user writes, so that dropping one from `src/lib.rs` by
//! accident fails to compile. Adding an item to the facade means adding it
//! here; removing one means removing it here, on purpose.
//!
//! The uses are tiny: building a value where that is cheap, naming a type
//! or a trait otherwise. What the items do is tested elsewhere.

use std::time::Duration;

/// Names a type without making a value of it.
fn named<T: ?Sized>() {}

/// The root and the prelude: the macros, a pipeline and its report, the
/// stage traits and the item types.
#[tokio::test]
async fn root_and_prelude() -> Result<(), pipeline::Error> {
    use pipeline::prelude::{
        Batch, Collected, Emit, Envelope, Error, Pipeline, PipelineHandle, Report, Source, Stage,
        StageContext, SyncStage, pipeline, stage,
    };

    #[stage]
    fn double(x: u64) -> u64 {
        x * 2
    }

    fn stage_of_u64<S: Stage<u64>>(_: &S) {}
    fn sync_stage_of_u64<S: SyncStage<u64>>() {}
    fn source<S: Source>() {}
    stage_of_u64(&double {});
    sync_stage_of_u64::<pipeline::io::Collect<u64>>();
    source::<pipeline::io::Iter<std::ops::Range<u64>>>();
    named::<Emit<'_, u64>>();
    named::<StageContext>();
    named::<Envelope<u64>>();
    named::<Error>();

    let out: Collected<Batch<u64>> = Collected::new();
    let built: Pipeline<_> = pipeline! {
        iter(1..=4u64) >> double >> batch(max_items = 2) >> collect(&out);
    };
    let handle: PipelineHandle = built.spawn();
    let report: Report = handle.join().await?;
    let doubled: &pipeline::StageReport = report.stage("double").unwrap();
    assert_eq!(doubled.items_out, 4);
    let batches: Vec<Vec<u64>> = out.take().into_iter().map(Batch::into_items).collect();
    assert_eq!(batches, [[2, 4], [6, 8]]);

    named::<pipeline::Batch<u8>>();
    named::<pipeline::Collected<u8>>();
    named::<pipeline::Envelope<u8>>();
    named::<pipeline::Error>();
    named::<pipeline::PipelineHandle>();
    named::<pipeline::Report>();
    named::<pipeline::StageReport>();
    named::<pipeline::Pipeline<()>>();
    named::<pipeline::StageContext>();
    named::<pipeline::Emit<'_, u8>>();
    fn root_traits<S: pipeline::Stage<u64>, Y: pipeline::SyncStage<u64>, So: pipeline::Source>() {}
    root_traits::<double, pipeline::io::Discard<u64>, pipeline::io::Interval>();
    Ok(())
}

/// A stage written by hand: `pipeline::stages`.
#[test]
fn stages() {
    use pipeline::stages::{
        BoxError, Emit, Failed, Failures, IsSink, Never, Pull, Source, Stage, StageContext,
        StageError, SyncStage,
    };

    struct Upper;
    impl SyncStage<String> for Upper {
        type Out = String;
        type Error = Never;
        fn process(
            &mut self,
            s: String,
            out: &mut Emit<'_, String>,
            _: &StageContext,
        ) -> Result<(), Never> {
            out.emit(s.to_uppercase());
            Ok(())
        }
        fn init(&mut self, _: &StageContext) -> Result<(), BoxError> {
            Ok(())
        }
    }
    pipeline::stages::sync_stage!(Upper: String);
    fn stage<S: Stage<String>>(_: S) {}
    stage(Upper);

    fn sink<S: IsSink>() {}
    sink::<pipeline::io::Discard<u8>>();
    fn source<S: Source>() {}
    source::<pipeline::io::Interval>();

    let failed = Failed::new("parse", "x", "not a number");
    assert_eq!(failed.error.error(), Some(&"not a number"));
    let _: StageError<&str> = StageError::BreakerOpen;
    named::<Failures<Never>>();
    assert_ne!(Pull::Done, Pull::More);
}

/// Keyed accumulation and spilling: `pipeline::accumulate`.
#[test]
fn accumulate() {
    use pipeline::accumulate::codec::{
        MAX_ZERO_SIZED_ELEMENTS, RecordLocation, from_bytes, to_bytes,
    };
    use pipeline::accumulate::{
        Accumulator, BatchBy, BatchState, ByteTotal, Completeness, FixedSize, Policy, Spill,
        SpillError, SpillPolicy, Unfinished, UnfinishedReason,
    };

    struct Count;
    impl Accumulator<u8> for Count {
        type Key = ();
        type State = u64;
        type Out = u64;
        fn key(&mut self, _: &u8) {}
        fn open(&mut self, _: &()) -> u64 {
            0
        }
        fn update(&mut self, _: &(), n: &mut u64, _: u8) {
            *n += 1;
        }
        fn check(&mut self, _: &(), _: &mut u64) -> Completeness<u64> {
            Completeness::Incomplete
        }
        fn flush(&mut self, _: (), n: u64) -> Option<u64> {
            Some(n)
        }
        fn configure(&mut self, policy: &Policy) {
            let _: &Option<SpillPolicy> = &policy.spill;
        }
    }
    let mut count = Count;
    let mut n = count.open(&());
    count.update(&(), &mut n, 7);
    assert_eq!(count.flush((), n), Some(1));

    let bytes = to_bytes(&(3u32, String::from("x")));
    let back: Result<(u32, String), SpillError> = from_bytes(&bytes);
    assert_eq!(back.unwrap(), (3, "x".to_string()));
    let _: u64 = MAX_ZERO_SIZED_ELEMENTS;
    fn spill<T: Spill + pipeline::accumulate::codec::Spill>() {}
    spill::<u64>();
    let _: Option<pipeline::accumulate::codec::SpillError> = None;
    named::<RecordLocation>();

    let unfinished = Unfinished {
        key: 1,
        partial: Some(2),
        reason: UnfinishedReason::Expired,
    };
    assert_eq!(unfinished.key, 1);
    named::<BatchBy<fn(&u8)>>();
    named::<BatchState<u8, FixedSize>>();
    fn byte_total<N: ByteTotal<u8>>() {}
    byte_total::<FixedSize>();
}

/// An item's metadata: `pipeline::envelope`.
#[test]
fn envelope() {
    use pipeline::envelope::{Attributes, Cost, Envelope, Headers, HeadersIter, Metadata};

    let mut item = Envelope::new(1u8, 0);
    item.set_header("k", "v");
    item.set_cost(Cost::ZERO);
    let metadata: &Metadata = item.metadata().unwrap();
    let headers: &Headers = &metadata.headers;
    let each: HeadersIter<'_> = headers.iter();
    assert_eq!(each.count(), 1);
    let _: Attributes = Attributes::new();
}

/// The shape of a pipeline: `pipeline::graph`.
#[test]
fn graph() {
    use pipeline::graph::{GraphEdge, GraphNode, NodeKind, PipelineGraph};

    let graph = PipelineGraph::new(Vec::<GraphNode>::new(), Vec::<GraphEdge>::new());
    assert!(graph.nodes().is_empty() && graph.edges().is_empty());
    assert_ne!(NodeKind::Source, NodeKind::Sink);
}

/// The built-in sources and sinks: `pipeline::io`.
#[tokio::test]
async fn io() {
    use pipeline::io::{
        AsBytes, Bytes, ChannelClosed, ChannelSink, Collect, Collected, DEFAULT_MAX_LINE, Discard,
        DuplexClient, DuplexError, DuplexSink, DuplexSource, FILE_HEADER, FRAME_HEADER, FileError,
        FileErrorKind, FileFrames, FileLines, Files, ForEach, ForEachAsync, ForeignTag, FrameError,
        Frames, Interval, Iter, LINE_HEADER, LineError, Lines, OkItems, OutputStream, Push,
        PushClosed, PushHandle, PushStop, Results, Sink, SinkError, SinkResult, SinkStage, Stream,
        StreamClosed, StreamSink, StreamSource, Tag, Tagged, Through, TryPushError, WriteError,
        WriteSink, channel, collect, discard, duplex, files, for_each, for_each_async, frames,
        interval, iter, lines, ok, push, results, sink, stream, stream_sink, through, write,
        write_lines,
    };

    let _: Iter<_> = iter([1u8]);
    let _: StreamSource<_> = stream(futures::stream::iter([1u8]));
    let (_source, handle): (Push<u8>, PushHandle<u8>) = push(1);
    assert!(handle.try_send(1).is_ok());
    let _: Lines<&[u8]> = lines(&b""[..]).max_line(DEFAULT_MAX_LINE);
    let _: Frames<&[u8]> = frames(&b""[..], b"\n", 16);
    let _: Results<Lines<&[u8]>> = results(lines(&b""[..]));
    let _: OkItems<u8, LineError> = ok();
    let file: Files = files("in.txt");
    let _: (FileLines, FileFrames) = (file.clone().lines(), file.frames(b"\n", 16));
    let _: Interval = interval(Duration::from_secs(1));
    let (client, _, _): (DuplexClient<u8, u8>, DuplexSource<u8>, DuplexSink<u8>) = duplex(1);
    client.close();

    let (tx, _rx) = tokio::sync::mpsc::channel::<u8>(1);
    let _: ChannelSink<u8> = channel(tx);
    let _: Collect<u8> = collect(&Collected::new());
    let _: Discard<u8> = discard();
    let _: ForEach<u8, _> = for_each(|_: u8| {});
    let _: ForEachAsync<u8, _> = for_each_async(|_: u8| async {});
    let _: SinkStage<_> = sink(futures::sink::drain::<u8>());
    let (_, _): (StreamSink<u8>, OutputStream<u8>) = stream_sink(1);
    let _: Through<_, _> = through(futures::sink::drain::<u8>(), futures::stream::empty::<u8>());
    let _: WriteSink<Vec<u8>> = write(Vec::new(), 1);
    let _: WriteSink<Vec<u8>> = write_lines(Vec::new(), 1);

    fn traits<S: Stream, K: Sink<u8>, B: AsBytes + ?Sized, R: SinkResult>() {}
    traits::<futures::stream::Empty<u8>, futures::sink::Drain<u8>, Bytes, ()>();
    named::<ChannelClosed>();
    named::<DuplexError>();
    named::<FileError>();
    named::<FileErrorKind>();
    named::<FrameError>();
    named::<PushClosed<u8>>();
    named::<PushStop>();
    named::<TryPushError<u8>>();
    named::<SinkError<u8>>();
    named::<StreamClosed>();
    named::<WriteError>();
    named::<ForeignTag>();
    named::<Tag>();
    named::<Tagged<u8>>();
    assert!(![FILE_HEADER, LINE_HEADER, FRAME_HEADER].contains(&""));
}

/// What a pipeline reports: `pipeline::metrics`.
#[test]
fn metrics() {
    use pipeline::metrics::{
        AccumulatorReport, BATCH_FLUSHES_TOTAL, BreakerReport, BreakerState, DEFAULT_PIPELINE_NAME,
        EdgeReport, EdgeStats, FlushCounts, FlushReason, ITEMS_DEAD_LETTERED_TOTAL,
        ITEMS_DROPPED_TOTAL, ITEMS_FAILED_TOTAL, ITEMS_IN_TOTAL, ITEMS_OUT_TOTAL, QUEUE_DEPTH,
        Report, SEND_WAIT_SECONDS, STAGE_CHUNK_SECONDS, StageReport, StageState, StageStatus,
    };

    let edge = EdgeStats::new("a", "b", None);
    assert_eq!(EdgeReport::from_stats(&edge).sent, 0);
    assert_eq!(FlushCounts::default().get(FlushReason::Items), 0);
    named::<AccumulatorReport>();
    named::<BreakerReport>();
    named::<BreakerState>();
    named::<Report>();
    named::<StageReport>();
    named::<StageState>();
    named::<StageStatus>();
    let names = [
        BATCH_FLUSHES_TOTAL,
        DEFAULT_PIPELINE_NAME,
        ITEMS_DEAD_LETTERED_TOTAL,
        ITEMS_DROPPED_TOTAL,
        ITEMS_FAILED_TOTAL,
        ITEMS_IN_TOTAL,
        ITEMS_OUT_TOTAL,
        QUEUE_DEPTH,
        SEND_WAIT_SECONDS,
        STAGE_CHUNK_SECONDS,
    ];
    assert!(names.iter().all(|name| !name.is_empty()));
}

/// Following an item's trace context: `pipeline::trace`.
#[test]
fn trace() {
    use pipeline::trace::{
        BAGGAGE_HEADER, TRACEPARENT_HEADER, TraceContext, Traced, current, inject_current, traced,
    };

    let _stage: Traced<pipeline::io::Discard<u8>> = traced(pipeline::io::discard());
    assert_eq!(current(), None::<TraceContext>);
    assert!(!inject_current(&mut pipeline::envelope::Headers::new()));
    assert_eq!(
        (TRACEPARENT_HEADER, BAGGAGE_HEADER),
        ("traceparent", "baggage")
    );
}
