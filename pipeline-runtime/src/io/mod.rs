//! Built-in sources and sinks.
//!
//! Sources: [`iter`], [`stream`], [`push`] (a back-pressured handle other
//! code sends into), [`lines`] and [`frames`] (text lines and delimited
//! byte frames read from any `AsyncRead`), [`files`] (the lines or frames
//! of a file or a directory of files, by path, with the file's name in
//! each item's headers), [`interval`] (clock ticks). [`results`] turns a
//! source's read errors into items.
//!
//! Sinks: [`for_each`], [`collect`], [`discard`], [`write()`] and
//! [`write_lines`] (to any `AsyncWrite`), [`channel`] (a tokio `mpsc`
//! sender), [`sink`] (any `futures::Sink`) and [`stream_sink`] (the items
//! as a `futures::Stream`, for other code to read).
//!
//! Adapters: [`through`] puts a `futures::Sink` and the `futures::Stream`
//! paired with it (a socket split in two) in the middle of a pipeline;
//! [`duplex`] makes a pipeline the body of a service, answering each call
//! with its response.

mod channel;
mod collect;
mod discard;
mod duplex;
mod files;
mod for_each;
mod frames;
mod interval;
mod iter;
mod lines;
mod push;
mod results;
mod sink;
mod stream;
mod stream_sink;
mod through;
mod write;

pub use channel::{ChannelClosed, ChannelSink, channel};
pub use collect::{Collect, Collected, collect};
pub use discard::{Discard, discard};
pub use duplex::{
    DuplexClient, DuplexError, DuplexSink, DuplexSource, ForeignTag, Tag, Tagged, duplex,
};
pub use files::{
    FILE_HEADER, FRAME_HEADER, FileError, FileErrorKind, FileFrames, FileLines, Files, LINE_HEADER,
    files,
};
pub use for_each::{
    ForEach, ForEachAsync, SinkResult, for_each, for_each_async, for_each_unchecked,
};
pub use frames::{FrameError, Frames, frames};
pub use interval::{Interval, interval};
pub use iter::{Iter, iter};
pub use lines::{DEFAULT_MAX_LINE, LineError, Lines, lines};
pub use push::{Push, PushClosed, PushHandle, PushStop, TryPushError, push};
pub use results::{OkItems, Results, ok, results};
pub use sink::{SinkError, SinkStage, sink};
pub use stream::{StreamSource, stream};
pub use stream_sink::{OutputStream, StreamClosed, StreamSink, stream_sink};
pub use through::{Through, ThroughChain, through};
pub use write::{AsBytes, WriteError, WriteSink, write, write_lines};

/// The stream trait that [`stream`] reads from, re-exported so that
/// generated code and users name the same trait.
pub use futures::Stream;

/// The sink trait that [`sink`] and [`through`] send into, re-exported so
/// that generated code and users name the same trait.
pub use futures::Sink;

/// The byte buffer that [`frames`] yields and [`write()`] takes, re-exported
/// so that users name the same type.
pub use bytes::Bytes;
