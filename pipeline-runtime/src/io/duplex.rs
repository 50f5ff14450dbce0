use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::push::{Push, PushHandle, push};
use crate::stage::{
    BoxError, Emit, Failures, IsSink, Never, Pull, Source, StageContext, SyncStage,
};

/// Request/response use of a pipeline: the pipeline as the body of a
/// service.
///
/// Returns three ends:
///
/// - a [`DuplexClient`], which other code calls with a request and which
///   returns the pipeline's response ([`call`](DuplexClient::call)); clone
///   it for each caller;
/// - a [`DuplexSource`], the pipeline's source: it yields each request as
///   a [`Tagged<Req>`], the request with its caller's [`Tag`];
/// - a [`DuplexSink`], the pipeline's sink: it takes each response as a
///   [`Tagged<Resp>`] and hands it to the caller its tag names.
///
/// Between the two, stages keep the tag with the item:
/// [`Tagged::map`] (or [`into_parts`](Tagged::into_parts) and
/// [`Tag::with`]) turns a request into its response.
///
/// **Back-pressure**: at most `capacity` requests wait for the pipeline to
/// take them; [`call`](DuplexClient::call) waits while that many do.
///
/// **Every call ends.** A call whose item leaves the pipeline without a
/// response (filtered out, failed, dropped, or still inside when the
/// pipeline ends or is aborted) returns [`DuplexError::NoResponse`] as
/// soon as that is known: the tag notifies its caller when it is dropped
/// unanswered (with every copy of it, if the item was cloned). A call made
/// when the pipeline is gone, stopped, or closed by
/// [`close`](DuplexClient::close), returns [`DuplexError::Closed`].
///
/// The source ends when every client is dropped, or one of them calls
/// [`close`](DuplexClient::close), once it has yielded the requests
/// already sent.
///
/// ```
/// use std::sync::Arc;
/// use pipeline_runtime::chain::{Fuse, Head, drive};
/// use pipeline_runtime::graph::NodeKind;
/// use pipeline_runtime::io::{DuplexError, Tagged, duplex};
/// use pipeline_runtime::lifecycle::Pipeline;
/// use pipeline_runtime::metrics::StageStats;
/// use pipeline_runtime::stage::Never;
/// use pipeline_runtime::transform::filter_map;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client, requests, responses) = duplex::<String, usize>(16);
///
/// // requests >> measure >> responses, where `measure` answers with the
/// // request's length, and drops empty requests.
/// let stats = |name, kind| Arc::new(StageStats::new(name, kind));
/// let measure = filter_map(|request: Tagged<String>| {
///     (!request.value().is_empty()).then(|| request.map(|text| text.len()))
/// });
/// let chain = Head::new(requests, stats("requests", NodeKind::Source), 64);
/// let chain: Fuse<_, _, _, Tagged<usize>, _> =
///     Fuse::new(chain, measure, stats("measure", NodeKind::Transform));
/// let chain: Fuse<_, _, _, Never, _> =
///     Fuse::new(chain, responses, stats("responses", NodeKind::Sink));
/// let service = Pipeline::new(Vec::new(), move |control| drive(chain, control)).spawn();
///
/// assert_eq!(client.call("hello".to_string()).await, Ok(5));
/// assert_eq!(client.call(String::new()).await, Err(DuplexError::NoResponse));
/// client.close(); // the source ends, then the pipeline
/// assert_eq!(client.call("late".to_string()).await, Err(DuplexError::Closed));
/// service.join().await.unwrap();
/// # }
/// ```
///
/// # Panics
///
/// If `capacity` is zero.
pub fn duplex<Req, Resp>(
    capacity: usize,
) -> (DuplexClient<Req, Resp>, DuplexSource<Req>, DuplexSink<Resp>)
where
    Resp: Send + 'static,
{
    let (source, handle) = push(capacity);
    let table = Arc::new(Table {
        state: Mutex::new(TableState {
            waiting: HashMap::default(),
            closed: false,
        }),
        next: AtomicU64::new(0),
    });
    (
        DuplexClient {
            handle,
            table: Arc::clone(&table),
        },
        DuplexSource { push: source },
        DuplexSink { table },
    )
}

/// Calls a pipeline made with [`duplex`]: sends it requests and awaits its
/// responses. Clones call the same pipeline.
pub struct DuplexClient<Req, Resp> {
    handle: PushHandle<Tagged<Req>>,
    table: Arc<Table<Resp>>,
}

impl<Req, Resp: Send + 'static> DuplexClient<Req, Resp> {
    /// Sends `request` into the pipeline, waiting while `capacity` requests
    /// wait for it, then waits for its response.
    ///
    /// Fails with [`DuplexError::Closed`] if the request could not be sent
    /// (the pipeline is gone, stopped or ended, or a client was
    /// [closed](Self::close)), and with [`DuplexError::NoResponse`] if the
    /// pipeline took it but its item left without a response, or the
    /// pipeline ended before answering.
    ///
    /// Dropping the returned future gives up on the response (which the
    /// pipeline still computes, and the sink discards).
    pub async fn call(&self, request: Req) -> Result<Resp, DuplexError> {
        let (tag, response) = Table::register(&self.table).ok_or(DuplexError::Closed)?;
        // A request that is not sent is dropped with its tag, which
        // unregisters it.
        self.handle
            .send(Tagged {
                value: request,
                tag,
            })
            .await
            .map_err(|_| DuplexError::Closed)?;
        response.await.map_err(|_| DuplexError::NoResponse)
    }
}

impl<Req, Resp> DuplexClient<Req, Resp> {
    /// Closes the pipeline's source for every client: later calls fail
    /// with [`DuplexError::Closed`], and the source ends once it has
    /// yielded the requests already sent. Calls already sent still get
    /// their responses.
    pub fn close(&self) {
        self.handle.close();
    }

    /// Whether calls fail with [`DuplexError::Closed`] now: a client was
    /// closed, or the pipeline stopped, ended or was dropped.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed() || self.table.lock().closed
    }

    /// How many calls the pipeline has taken or is to take, and not yet
    /// answered or given up on.
    pub fn pending(&self) -> usize {
        self.table.lock().waiting.len()
    }
}

impl<Req, Resp> Clone for DuplexClient<Req, Resp> {
    fn clone(&self) -> Self {
        DuplexClient {
            handle: self.handle.clone(),
            table: Arc::clone(&self.table),
        }
    }
}

impl<Req, Resp> fmt::Debug for DuplexClient<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplexClient")
            .field("capacity", &self.handle.capacity())
            .field("pending", &self.pending())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Why a [`DuplexClient::call`] returned no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplexError {
    /// The request was not sent: the pipeline is gone, stopped or ended,
    /// or a client closed it.
    Closed,
    /// The request was sent, but its item left the pipeline without a
    /// response (filtered out, failed or dropped), or the pipeline ended
    /// first.
    NoResponse,
}

impl fmt::Display for DuplexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DuplexError::Closed => "the pipeline is closed: the request was not sent",
            DuplexError::NoResponse => {
                "the pipeline gave no response: the request was filtered out, failed or \
                 dropped, or the pipeline ended first"
            }
        })
    }
}

impl Error for DuplexError {}

/// The source of a [`duplex`] pipeline: yields each request with its
/// caller's tag.
pub struct DuplexSource<Req> {
    push: Push<Tagged<Req>>,
}

impl<Req> Source for DuplexSource<Req> {
    type Out = Tagged<Req>;
    type Error = Never;

    fn init(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        self.push.init(ctx)
    }

    fn fill(
        &mut self,
        out: &mut Vec<Tagged<Req>>,
        max: usize,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Pull, Never>> {
        self.push.fill(out, max, ctx)
    }

    /// Refuses new calls (they fail with [`DuplexError::Closed`]); the
    /// requests it had not yielded are dropped, answering their callers
    /// [`DuplexError::NoResponse`].
    fn close(&mut self, ctx: &StageContext) -> impl Future<Output = Result<(), BoxError>> {
        self.push.close(ctx)
    }
}

impl<Req> fmt::Debug for DuplexSource<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DuplexSource").field(&self.push).finish()
    }
}

/// The sink of a [`duplex`] pipeline: hands each response to the caller
/// its tag names.
///
/// When it closes (the pipeline ends) or is dropped (the pipeline is
/// aborted), every call still waiting ends with
/// [`DuplexError::NoResponse`], and later calls fail with
/// [`DuplexError::Closed`].
pub struct DuplexSink<Resp> {
    table: Arc<Table<Resp>>,
}

impl<Resp: Send + 'static> SyncStage<Tagged<Resp>> for DuplexSink<Resp> {
    type Out = Never;
    type Error = ForeignTag;

    /// Hands `response` to its caller. A caller that gave up is skipped.
    fn process(
        &mut self,
        response: Tagged<Resp>,
        _: &mut Emit<'_, Never>,
        _: &StageContext,
    ) -> Result<(), ForeignTag> {
        self.respond(response)
    }

    fn process_chunk(
        &mut self,
        input: &mut Vec<Tagged<Resp>>,
        _: &mut Vec<Never>,
        failures: &mut Failures<ForeignTag>,
        _: &StageContext,
    ) {
        for response in input.drain(..) {
            match self.respond(response) {
                Ok(()) => failures.note_passed(1),
                Err(error) => failures.fail(error),
            }
        }
    }

    /// Ends every call still waiting with [`DuplexError::NoResponse`].
    fn close(&mut self, _: &StageContext) -> Result<(), BoxError> {
        self.table.close();
        Ok(())
    }
}

crate::sync_stage!(impl[Resp: Send + 'static] DuplexSink<Resp>: Tagged<Resp> where);

impl<Resp> IsSink for DuplexSink<Resp> {}

impl<Resp: Send + 'static> DuplexSink<Resp> {
    fn respond(&self, response: Tagged<Resp>) -> Result<(), ForeignTag> {
        let Tagged { value, tag } = response;
        if !tag.belongs_to(&self.table) {
            return Err(ForeignTag { id: tag.id() });
        }
        let waiting = self.table.lock().waiting.remove(&tag.id());
        if let Some(caller) = waiting {
            // The caller may have given up meanwhile: nothing to do then.
            let _ = caller.send(value);
        }
        Ok(())
    }
}

impl<Resp> Drop for DuplexSink<Resp> {
    fn drop(&mut self) {
        self.table.close();
    }
}

impl<Resp> fmt::Debug for DuplexSink<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplexSink")
            .field("pending", &self.table.lock().waiting.len())
            .finish()
    }
}

/// Why a [`DuplexSink`] failed an item: its tag comes from another
/// [`duplex`], so it has no caller here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignTag {
    /// The tag's id.
    pub id: u64,
}

impl fmt::Display for ForeignTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the response's tag {} comes from another duplex: no caller waits for it here",
            self.id
        )
    }
}

impl Error for ForeignTag {}

/// An item of a [`duplex`] pipeline: a request, or what it became, with
/// the [`Tag`] of the call that waits for it.
///
/// Dropping it (filtering or failing the item, for example) answers the
/// call with [`DuplexError::NoResponse`], unless a clone of it is still
/// alive.
pub struct Tagged<T> {
    value: T,
    tag: Tag,
}

impl<T> Tagged<T> {
    /// The call's id: unique within its [`duplex`], in the order the calls
    /// were made.
    pub fn id(&self) -> u64 {
        self.tag.id()
    }

    /// The value: the request, or what it became.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, mutably.
    pub fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Turns the value into another (the response, or a step towards it),
    /// keeping the tag.
    ///
    /// ```
    /// # use pipeline_runtime::io::Tagged;
    /// fn answer(request: Tagged<String>) -> Tagged<usize> {
    ///     request.map(|text| text.len())
    /// }
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Tagged<U> {
        Tagged {
            value: f(self.value),
            tag: self.tag,
        }
    }

    /// Turns the value into another, keeping the tag, or fails with `f`'s
    /// error, dropping the tag (which answers the call
    /// [`DuplexError::NoResponse`]).
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Tagged<U>, E> {
        Ok(Tagged {
            value: f(self.value)?,
            tag: self.tag,
        })
    }

    /// The value and the tag, apart; [`Tag::with`] puts a value back with
    /// the tag.
    pub fn into_parts(self) -> (T, Tag) {
        (self.value, self.tag)
    }
}

/// A copy of the item that answers the same call: the call is answered by
/// the first copy that reaches the [`DuplexSink`], and gets
/// [`DuplexError::NoResponse`] only once every copy is dropped unanswered.
impl<T: Clone> Clone for Tagged<T> {
    fn clone(&self) -> Self {
        Tagged {
            value: self.value.clone(),
            tag: self.tag.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Tagged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tagged")
            .field("id", &self.id())
            .field("value", &self.value)
            .finish()
    }
}

/// The tag of a [`duplex`] call: its id, and a guard that answers the call
/// with [`DuplexError::NoResponse`] when the last copy of the tag is
/// dropped before the call is answered.
#[derive(Clone)]
pub struct Tag {
    guard: Arc<Guard>,
}

impl Tag {
    /// The call's id: unique within its [`duplex`], in the order the calls
    /// were made.
    pub fn id(&self) -> u64 {
        self.guard.id
    }

    /// `value` with this tag: what the [`DuplexSink`] takes.
    pub fn with<T>(self, value: T) -> Tagged<T> {
        Tagged { value, tag: self }
    }

    /// Whether the tag was made by the duplex whose table is `table`.
    fn belongs_to<Resp>(&self, table: &Arc<Table<Resp>>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.guard.table), Arc::as_ptr(table))
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tag").field(&self.id()).finish()
    }
}

/// Unregisters its call when the last copy of its tag is dropped, which
/// drops the caller's sender if the call was not answered.
struct Guard {
    id: u64,
    table: Arc<dyn Release>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.table.release(self.id);
    }
}

/// The calls waiting, by id, whatever their response type.
trait Release: Send + Sync {
    /// Forgets the call `id`, if it still waits: it ends with
    /// [`DuplexError::NoResponse`].
    fn release(&self, id: u64);
}

/// The calls of a [`duplex`] that wait for their response.
struct Table<Resp> {
    state: Mutex<TableState<Resp>>,
    /// The id of the next call.
    next: AtomicU64,
}

struct TableState<Resp> {
    waiting: HashMap<u64, oneshot::Sender<Resp>, foldhash::fast::RandomState>,
    /// The sink is gone: no call will be answered.
    closed: bool,
}

impl<Resp: Send + 'static> Table<Resp> {
    /// Registers a new call: its tag, and where its response comes.
    /// `None` if the sink is gone.
    fn register(this: &Arc<Self>) -> Option<(Tag, oneshot::Receiver<Resp>)> {
        let (sender, receiver) = oneshot::channel();
        let id = this.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = this.lock();
            if state.closed {
                return None;
            }
            state.waiting.insert(id, sender);
        }
        let table: Arc<dyn Release> = Arc::clone(this) as Arc<dyn Release>;
        let tag = Tag {
            guard: Arc::new(Guard { id, table }),
        };
        Some((tag, receiver))
    }
}

impl<Resp> Table<Resp> {
    fn lock(&self) -> MutexGuard<'_, TableState<Resp>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every waiting call with `NoResponse`, and refuses new ones.
    fn close(&self) {
        let waiting = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.waiting)
        };
        // The senders are dropped outside the lock.
        drop(waiting);
    }
}

impl<Resp: Send> Release for Table<Resp> {
    fn release(&self, id: u64) {
        let caller = self.lock().waiting.remove(&id);
        drop(caller);
    }
}
