//! Reconciles start in the order they were asked for. kube's controller keeps the requests that
//! arrive while all its reconcile slots are busy in a hash set and takes them in hash order, so
//! under a steady inflow the objects that hash late wait until the inflow stops: at
//! N = 100,000 one new resource in a hundred waited minutes (docs/benchmarks.md, sixth pass).
//!
//! So every ask for a reconcile (a watch event, a Secret or connection change, an owed status
//! write) comes here first and waits its turn in line, one place per object as in client-go's
//! workqueue: asked for again while waiting, it keeps its place. At most `capacity` turns are
//! out at once; a turn is handed to kube, which runs it without a limit of its own. kube keeps
//! its timers (drift checks, retries): a reconcile one of them starts first asks for a turn, and
//! with none free or others waiting it takes its place at the back and returns at once.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::sync::LockOrRecover;

/// The queue's bookkeeping, without channels or locks: what decides who runs.
#[derive(Debug)]
pub struct Queue<T> {
    /// Reconciles running at once, at most.
    capacity: usize,
    /// Waiting for a turn, first asked first.
    order: VecDeque<T>,
    waiting: HashSet<T>,
    /// Given a turn and handed to kube, not started yet.
    handed: HashSet<T>,
    running: HashSet<T>,
}

/// What a reconcile that kube started may do.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Its turn: run.
    Run,
    /// Queued (or already waiting): return at once; the queue hands it back when its turn comes.
    Wait,
}

impl<T: Hash + Eq + Clone> Queue<T> {
    pub fn new(capacity: usize) -> Queue<T> {
        Queue {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            waiting: HashSet::new(),
            handed: HashSet::new(),
            running: HashSet::new(),
        }
    }

    /// Something asks for a reconcile of `item`: it waits for a turn unless it has one that
    /// kube has not started yet (that run reads the object as it is then).
    pub fn ask(&mut self, item: &T) {
        if !self.handed.contains(item) && self.waiting.insert(item.clone()) {
            self.order.push_back(item.clone());
        }
    }

    /// kube started a reconcile of `item` (handed by the queue, or one of kube's own timers).
    pub fn admit(&mut self, item: &T) -> Admission {
        if self.handed.remove(item) {
            self.running.insert(item.clone());
            return Admission::Run;
        }
        let turn_free = self.order.is_empty() && self.taken() < self.capacity;
        if turn_free && !self.running.contains(item) {
            self.running.insert(item.clone());
            return Admission::Run;
        }
        self.ask(item);
        Admission::Wait
    }

    /// A reconcile that was admitted ended (or was dropped).
    pub fn finished(&mut self, item: &T) {
        self.running.remove(item);
    }

    /// kube found nothing to run for a handed item (deleted meanwhile): its turn is free again.
    pub fn gone(&mut self, item: &T) {
        self.handed.remove(item);
    }

    /// The next items whose turn has come, to hand to kube; each counts as taken from now on.
    pub fn next_turns(&mut self) -> Vec<T> {
        let mut turns = Vec::new();
        while self.taken() < self.capacity {
            let Some(item) = self.order.pop_front() else {
                break;
            };
            self.waiting.remove(&item);
            self.handed.insert(item.clone());
            turns.push(item);
        }
        turns
    }

    /// Reconciles waiting for a turn.
    pub fn waiting(&self) -> usize {
        self.order.len()
    }

    fn taken(&self) -> usize {
        self.handed.len() + self.running.len()
    }
}

/// Reconciles waiting for a turn, all kinds together.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Whether any reconcile waits for a turn: then nothing should slow the ones running
/// (`io_batching`).
pub fn anyone_waiting() -> bool {
    WAITING.load(Ordering::Relaxed) > 0
}

/// One kind's queue, shared by its reconciles; turns are handed to kube over `turns`.
pub struct WorkQueue<T> {
    queue: Mutex<Queue<T>>,
    turns: mpsc::UnboundedSender<T>,
    /// Where its waiting reconciles are counted with the other kinds'.
    line: &'static AtomicUsize,
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    /// A queue of `capacity` turns, and the stream of reconciles whose turn came (for kube's
    /// `reconcile_on`).
    pub fn new(capacity: usize) -> (Arc<WorkQueue<T>>, mpsc::UnboundedReceiver<T>) {
        Self::counted_in(capacity, &WAITING)
    }

    fn counted_in(
        capacity: usize,
        line: &'static AtomicUsize,
    ) -> (Arc<WorkQueue<T>>, mpsc::UnboundedReceiver<T>) {
        let (turns, handed) = mpsc::unbounded_channel();
        let queue = Arc::new(WorkQueue {
            queue: Mutex::new(Queue::new(capacity)),
            turns,
            line,
        });
        (queue, handed)
    }

    /// Ask for a reconcile of `item`; kube gets it when its turn comes.
    pub fn ask(&self, item: T) {
        self.change(|queue| queue.ask(&item));
    }

    /// A turn for the reconcile of `item` that kube just started, or None: it waits in line
    /// and comes back by itself. The turn is given back when the returned guard drops.
    pub fn turn(self: &Arc<Self>, item: T) -> Option<Turn<T>> {
        match self.change(|queue| queue.admit(&item)) {
            Admission::Run => Some(Turn {
                queue: Arc::clone(self),
                item: Some(item),
            }),
            Admission::Wait => None,
        }
    }

    /// kube had no object for a reconcile: if it was handed over, its turn is free again.
    pub fn gone(&self, item: &T) {
        self.change(|queue| queue.gone(item));
    }

    /// Reconciles waiting for a turn.
    pub fn waiting(&self) -> usize {
        self.queue.lock_or_recover().waiting()
    }

    fn finished(&self, item: &T) {
        self.change(|queue| queue.finished(item));
    }

    /// Apply `change` to the queue, hand the turns that came to kube, and count what waits now.
    fn change<R>(&self, change: impl FnOnce(&mut Queue<T>) -> R) -> R {
        let mut queue = self.queue.lock_or_recover();
        let before = queue.waiting();
        let result = change(&mut queue);
        for item in queue.next_turns() {
            // Closed only when kube's controller stopped: nothing runs any more anyway.
            let _ = self.turns.send(item);
        }
        let after = queue.waiting();
        if after > before {
            self.line.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.line.fetch_sub(before - after, Ordering::Relaxed);
        }
        result
    }
}

/// A running reconcile's turn; dropping it (the reconcile ended or was cancelled) frees it.
pub struct Turn<T: Hash + Eq + Clone + Send + 'static> {
    queue: Arc<WorkQueue<T>>,
    item: Option<T>,
}

impl<T: Hash + Eq + Clone + Send + 'static> Drop for Turn<T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.queue.finished(&item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a scenario and what should follow.
    enum Step {
        /// Something asks for a reconcile of the item.
        Ask(&'static str),
        /// kube starts a reconcile of the item: does it run?
        Admit(&'static str, Admission),
        Finish(&'static str),
        Gone(&'static str),
        /// The items handed back to kube now, in order.
        Turns(&'static [&'static str]),
    }
    use Admission::{Run, Wait};
    use Step::*;

    fn play(capacity: usize, steps: &[Step]) {
        let mut queue = Queue::new(capacity);
        for (i, step) in steps.iter().enumerate() {
            match step {
                Ask(item) => queue.ask(item),
                Admit(item, want) => assert_eq!(&queue.admit(item), want, "step {i}: {item}"),
                Finish(item) => queue.finished(item),
                Gone(item) => queue.gone(item),
                Turns(want) => assert_eq!(&queue.next_turns(), want, "step {i}"),
            }
        }
    }

    #[test]
    fn scenarios() {
        let cases: [(&str, usize, Vec<Step>); 11] = [
            (
                "asks wait in line and are handed to kube in order, up to the free turns",
                2,
                vec![
                    Ask("a"),
                    Ask("b"),
                    Ask("c"),
                    Turns(&["a", "b"]),
                    Admit("a", Run),
                    Admit("b", Run),
                    Turns(&[]),
                    Finish("b"),
                    Turns(&["c"]),
                ],
            ),
            (
                "an ask for an item handed and not started yet adds nothing: that run reads the latest",
                1,
                vec![
                    Ask("a"),
                    Turns(&["a"]),
                    Ask("a"),
                    Admit("a", Run),
                    Finish("a"),
                    Turns(&[]),
                ],
            ),
            (
                "an ask while it runs gets it one more run, after",
                2,
                vec![
                    Ask("a"),
                    Turns(&["a"]),
                    Admit("a", Run),
                    Ask("a"),
                    Turns(&["a"]),
                    Finish("a"),
                    Admit("a", Run),
                ],
            ),
            (
                "a run started by kube's timer queues behind earlier asks",
                1,
                vec![
                    Ask("a"),
                    Turns(&["a"]),
                    Admit("a", Run),
                    Ask("b"),
                    Admit("timer", Wait),
                    Finish("a"),
                    Turns(&["b"]),
                    Admit("b", Run),
                    Finish("b"),
                    Turns(&["timer"]),
                ],
            ),
            (
                "free turns run at once, nothing queues",
                2,
                vec![Admit("a", Run), Admit("b", Run), Turns(&[])],
            ),
            (
                "when all turns are taken, later asks wait and get turns in the order they asked",
                1,
                vec![
                    Admit("a", Run),
                    Admit("c", Wait),
                    Admit("b", Wait),
                    Admit("d", Wait),
                    Turns(&[]),
                    Finish("a"),
                    Turns(&["c"]),
                    Admit("c", Run),
                    Finish("c"),
                    Turns(&["b"]),
                    Admit("b", Run),
                    Finish("b"),
                    Turns(&["d"]),
                ],
            ),
            (
                "asked again while waiting, an item keeps its place and runs once",
                1,
                vec![
                    Admit("a", Run),
                    Admit("b", Wait),
                    Admit("c", Wait),
                    Admit("b", Wait),
                    Finish("a"),
                    Turns(&["b"]),
                    Admit("b", Run),
                    Finish("b"),
                    Turns(&["c"]),
                    Admit("c", Run),
                    Finish("c"),
                    Turns(&[]),
                ],
            ),
            (
                "a newcomer does not jump the line when a turn frees up",
                1,
                vec![
                    Admit("a", Run),
                    Admit("b", Wait),
                    Finish("a"),
                    Admit("z", Wait),
                    Turns(&["b"]),
                ],
            ),
            (
                "a handed turn counts as taken until kube runs it or finds the object gone",
                1,
                vec![
                    Admit("a", Run),
                    Admit("b", Wait),
                    Admit("c", Wait),
                    Finish("a"),
                    Turns(&["b"]),
                    Turns(&[]),
                    Gone("b"),
                    Turns(&["c"]),
                ],
            ),
            (
                "asked for while it runs (kube holds no second run), it waits for a turn of its own",
                2,
                vec![
                    Admit("a", Run),
                    Admit("a", Wait),
                    Turns(&["a"]),
                    Finish("a"),
                    Admit("a", Run),
                ],
            ),
            (
                "a capacity of zero still runs one at a time",
                0,
                vec![
                    Admit("a", Run),
                    Admit("b", Wait),
                    Finish("a"),
                    Turns(&["b"]),
                ],
            ),
        ];
        for (name, capacity, steps) in cases {
            eprintln!("{name}");
            play(capacity, &steps);
        }
    }

    #[tokio::test]
    async fn asks_are_handed_to_kube_as_turns_free_up() {
        static LINE: AtomicUsize = AtomicUsize::new(0);
        let (queue, mut handed) = WorkQueue::counted_in(1, &LINE);
        queue.ask("a");
        queue.ask("b");
        assert_eq!(handed.recv().await, Some("a"));
        assert_eq!(LINE.load(Ordering::Relaxed), 1);
        let turn = queue.turn("a").expect("a's turn");
        assert!(handed.try_recv().is_err(), "b waits while a runs");
        drop(turn);
        assert_eq!(handed.recv().await, Some("b"));
        assert_eq!(LINE.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn turns_are_handed_back_in_order_and_freed_when_the_guard_drops() {
        // Its own count: the process-wide one is read by other tests' runtimes.
        static LINE: AtomicUsize = AtomicUsize::new(0);
        let (queue, mut handed) = WorkQueue::counted_in(1, &LINE);
        let (other, _) = WorkQueue::counted_in(1, &LINE);
        let first = queue.turn("a").expect("a free turn");
        assert!(queue.turn("b").is_none());
        assert!(queue.turn("c").is_none());
        let _busy = other.turn("x");
        assert!(other.turn("y").is_none());
        assert_eq!(queue.waiting(), 2);
        assert_eq!(LINE.load(Ordering::Relaxed), 3, "both kinds' lines");
        drop(first);
        assert_eq!(handed.recv().await, Some("b"));
        assert_eq!(LINE.load(Ordering::Relaxed), 2);
        let second = queue.turn("b").expect("b's turn");
        assert!(handed.try_recv().is_err(), "c waits while b runs");
        drop(second);
        assert_eq!(handed.recv().await, Some("c"));
        queue.gone(&"c");
        assert_eq!(queue.waiting(), 0);
        assert!(queue.turn("d").is_some(), "c's turn was given back");
        assert_eq!(LINE.load(Ordering::Relaxed), 1, "only y waits");
    }
}
