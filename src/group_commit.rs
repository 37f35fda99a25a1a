//! Group commit: many requests' writes in one round trip. Each caller hands its item to one task
//! and waits for its own answer; the task takes everything queued while its previous write was
//! in flight (up to a batch size) and writes it at once. Under load that is one statement for
//! many requests instead of one each; alone, an item is written by itself as before. Nothing is
//! answered before the write it belongs to is done.
//!
//! The same queue serves reads: a batch of lookups is one statement, each caller answered from
//! it, read no earlier than the caller asked.
//!
//! Used by the audit trail (`audit.rs`), our own grants' issuances (`oauth/issuance_writer.rs`),
//! the token path's identity reads (`users/sea.rs`), the code exchanges' claims and verdicts
//! (`wechat/code_exchange.rs`), the login tickets' spends (`oauth/login_tickets.rs`) and the
//! Mini Program sign-ins' session writes (`login/session_writes.rs`); the last three through
//! [`write_through`], as the first two batch only on some backends and all three write alone
//! outside a Tokio runtime.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

type Waiting<T, R> = (T, oneshot::Sender<R>);

/// The queue to one group-commit task.
pub struct GroupCommit<T, R> {
    queue: Option<mpsc::Sender<Waiting<T, R>>>,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Start the task on the current Tokio runtime (none outside one: every
    /// [`submit`](Self::submit) then hands its item back). `write` gets each batch, at most
    /// `batch` items in the order they were queued, and answers with one result per item, in
    /// the same order. The task ends when the last clone of the returned queue is dropped.
    pub fn start<W, F>(batch: usize, queued: usize, write: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Vec<R>> + Send,
    {
        let queue = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (queue, mut waiting) = mpsc::channel::<Waiting<T, R>>(queued.max(1));
            let batch = batch.max(1);
            runtime.spawn(async move {
                let mut taken = Vec::with_capacity(batch);
                while waiting.recv_many(&mut taken, batch).await > 0 {
                    // Let the tasks that are ready run first: under load, some of them are
                    // about to queue items of their own, which then join this batch instead of
                    // costing a statement each. When nothing else is ready, this returns at once.
                    if taken.len() < batch {
                        tokio::task::yield_now().await;
                        while taken.len() < batch {
                            match waiting.try_recv() {
                                Ok(item) => taken.push(item),
                                Err(_) => break,
                            }
                        }
                    }
                    let (items, callers): (Vec<T>, Vec<_>) = taken.drain(..).unzip();
                    for (caller, answer) in callers.into_iter().zip(write(items).await) {
                        // A caller that went away (its request was cancelled) needs no answer.
                        let _ = caller.send(answer);
                    }
                }
            });
            queue
        });
        Self { queue }
    }

    /// Queue `item` and wait for its answer. `Err(item)` when there is no task to take it (no
    /// runtime, or the runtime is shutting down): the caller writes it itself. `Ok(None)` when
    /// the task stopped before answering.
    pub async fn submit(&self, item: T) -> Result<Option<R>, T> {
        let Some(queue) = &self.queue else {
            return Err(item);
        };
        let (answer, answered) = oneshot::channel();
        match queue.send((item, answer)).await {
            Ok(()) => Ok(answered.await.ok()),
            Err(mpsc::error::SendError((item, _))) => Err(item),
        }
    }
}

/// `item` written through `batches`, and its answer. Where there is no group commit (a backend
/// that does not batch this) or no task to take the item (no runtime, or it is shutting down),
/// `write` runs here for the item alone. `None` when the task stopped before answering.
pub async fn write_through<T, R, F>(
    batches: Option<&GroupCommit<T, R>>,
    item: T,
    write: impl FnOnce(Vec<T>) -> F,
) -> Option<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Future<Output = Vec<R>>,
{
    let item = match batches {
        Some(batches) => match batches.submit(item).await {
            Ok(answer) => return answer,
            Err(item) => item,
        },
        None => item,
    };
    write(vec![item]).await.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_answer_and_batches_form_under_load() {
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubling = GroupCommit::start(8, 64, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                items.into_iter().map(|i| i * 2).collect::<Vec<_>>()
            }
        });
        let calls = (0..40u32).map(|i| {
            let doubling = doubling.clone();
            tokio::spawn(async move { (i, doubling.submit(i).await) })
        });
        for call in futures::future::join_all(calls).await {
            let (i, answer) = call.unwrap();
            assert_eq!(answer, Ok(Some(i * 2)));
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
        assert!(sizes.len() < 40, "nothing was batched: {sizes:?}");
    }

    #[test]
    fn outside_a_runtime_the_item_comes_back() {
        let queue: GroupCommit<u32, u32> =
            GroupCommit::start(8, 8, |items: Vec<u32>| async move { items });
        let answer = futures::executor::block_on(queue.submit(7));
        assert_eq!(answer, Err(7));
    }
}
