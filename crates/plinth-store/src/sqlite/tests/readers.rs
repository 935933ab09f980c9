//! The read-only connections: at most `Readers::MOST` reads at once, whatever the callers do.

use super::super::readers::Readers;
use super::fresh;
use crate::StoreError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn readers() -> (tempfile::TempDir, Arc<Readers>) {
    let (dir, store) = fresh();
    drop(store);
    let readers = Arc::new(Readers::new(&dir.path().join("plinth.db")));
    (dir, readers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_reads_at_once_share_the_bounded_connections() {
    let (_dir, readers) = readers();
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reads = (0..40).map(|i| {
        let (readers, now, most) = (readers.clone(), now.clone(), most.clone());
        async move {
            readers
                .read(move |conn| {
                    let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(at_once, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                    conn.query_row("SELECT ?1 + 1", [i], |r| r.get::<_, i64>(0))
                })
                .await
        }
    });
    let answers = futures_util::future::join_all(reads).await;
    let answers: Vec<i64> = answers.into_iter().map(|a| a.expect("each read answers")).collect();
    assert_eq!(answers, (1..=40).collect::<Vec<i64>>(), "every read ran, each with its own value");
    let most = most.load(Ordering::SeqCst);
    assert!(most <= Readers::MOST, "{most} reads ran at once, more than {}", Readers::MOST);
    assert!(most > 1, "reads still run side by side ({most} at most)");
    assert_eq!(readers.free(), Readers::MOST, "every permit is back");
    assert!(readers.idle() <= Readers::MOST, "no connection kept beyond the bound: {}", readers.idle());
}

#[tokio::test]
async fn a_failed_or_panicking_read_gives_its_connection_back() {
    let (_dir, readers) = readers();
    let failed = readers.read(|conn| conn.query_row("SELECT x FROM nowhere", [], |r| r.get::<_, i64>(0))).await;
    assert!(matches!(&failed, Err(StoreError::Unavailable(m)) if m.contains("no such table")), "{failed:?}");
    let panicked = readers.read(|_conn| -> rusqlite::Result<i64> { panic!("a read that panics") }).await;
    let Err(StoreError::Unavailable(message)) = panicked else { panic!("a panicking read fails: {panicked:?}") };
    assert!(message.contains("reader task failed"), "{message}");
    assert_eq!(readers.free(), Readers::MOST, "both permits are back");
    let one: i64 = readers.read(|conn| conn.query_row("SELECT 1", [], |r| r.get(0))).await.expect("a read after them");
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_takes_no_permit_with_it() {
    let (_dir, readers) = readers();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new(gate));
    // Every permit held by a read that waits for the test.
    let held: Vec<_> = (0..Readers::MOST)
        .map(|_| {
            let (readers, gate) = (readers.clone(), gate.clone());
            tokio::spawn(async move {
                readers
                    .read(move |_conn| {
                        let _ = gate.lock().expect("the gate").recv();
                        Ok(0_i64)
                    })
                    .await
            })
        })
        .collect();
    for _ in 0..1000 {
        if readers.free() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(readers.free(), 0, "the held reads took every permit");
    let gave_up = tokio::time::timeout(Duration::from_millis(100), readers.read(|_c| Ok(1_i64))).await;
    assert!(gave_up.is_err(), "a read waits while every permit is held");
    for _ in 0..Readers::MOST {
        release.send(()).expect("a read waits for the gate");
    }
    for h in held {
        assert_eq!(h.await.expect("the task").expect("the read"), 0);
    }
    assert_eq!(readers.free(), Readers::MOST, "the caller that gave up left nothing held");
}
