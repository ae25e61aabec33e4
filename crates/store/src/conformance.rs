//! The store's contract as tests: every [`Store`](super::Store) must pass
//! them. `store_conformance_tests!(open)` expands them in the calling test
//! module, over stores from `open()`, an `async fn` returning a fresh, empty
//! store and what must live as long as it; `sqlite.rs` and `postgres.rs`
//! each run them.

/// Expands the conformance tests; see the module documentation.
macro_rules! store_conformance_tests {
    ($open:path) => {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use anyhow::anyhow;
        use serde_json::json;

        use prefsync_consent::UserState;
        use $crate::{
            AuditRow, Claim, Completed, Completion, DeliveryFilter, DeliveryStatus, IngestOutcome,
            IngestPlan, IntegrationRecord, OutboxEntry, Result, Store, StoredEvent, UserRecord,
        };

    const LEASE: i64 = 1_000;

    /// A fresh, empty store, and what must live as long as it.
    async fn open() -> (Box<dyn std::any::Any + Send>, Arc<dyn Store>) {
        $open().await
    }

    fn integration(id: &str, at_ms: i64) -> IntegrationRecord {
        IntegrationRecord {
            id: id.to_string(),
            type_id: "dotdigital".to_string(),
            enabled: true,
            config: json!({ "id": id, "settings": { "region": "r1" } }),
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
        }
    }

    fn event(id: &str, user: &str, received_at_ms: i64) -> StoredEvent {
        StoredEvent {
            event_id: id.to_string(),
            organization_user_id: user.to_string(),
            origin: None,
            status: prefsync_consent::EventStatus::Confirmed,
            created_at_ms: received_at_ms - 10,
            received_at_ms,
            payload: json!({ "id": id }),
        }
    }

    /// Ingests one event with a plan that sees only the user's state.
    async fn ingest_one(
        store: &dyn Store,
        event: StoredEvent,
        plan: impl Fn(Option<&UserRecord>) -> Result<IngestPlan> + Send + Sync + 'static,
    ) -> Result<IngestOutcome> {
        let outcomes = store
            .ingest(vec![event], Arc::new(move |_: usize, _: &StoredEvent, current: Option<&UserRecord>| plan(current)))
            .await?;
        assert_eq!(outcomes.len(), 1, "one outcome per event");
        Ok(outcomes.into_iter().next().expect("one outcome"))
    }

    /// A plan that bumps the user's version and enqueues `integrations`.
    fn bump(
        integrations: &[&str],
    ) -> impl for<'u> Fn(Option<&'u UserRecord>) -> Result<IngestPlan> + Send + Sync + use<> {
        let enqueue: Vec<String> = integrations.iter().map(|id| id.to_string()).collect();
        move |current: Option<&UserRecord>| {
            let mut state = match current {
                Some(user) => user.state.clone(),
                None => UserState::new("user"),
            };
            state.version += 1;
            Ok(IngestPlan {
                state: Some(state),
                enqueue: enqueue.clone(),
                trace_context: None,
            })
        }
    }

    /// Ingests a fresh event for "user" that bumps its version.
    async fn change(store: &dyn Store, event_id: &str, at_ms: i64, integrations: &[&str]) -> u64 {
        match ingest_one(&*store, event(event_id, "user", at_ms), bump(integrations))
            .await
            .expect("ingest")
        {
            IngestOutcome::Recorded { version, .. } => version,
            IngestOutcome::Duplicate => panic!("unexpected duplicate {event_id}"),
        }
    }

    /// Ingests for another user (the plan names the state after it).
    async fn change_user(
        store: &dyn Store,
        user: &str,
        event_id: &str,
        at_ms: i64,
        integration: &str,
    ) {
        let user_id = user.to_string();
        let enqueue = vec![integration.to_string()];
        let plan = move |current: Option<&UserRecord>| {
            let mut state =
                current.map_or_else(|| UserState::new(user_id.clone()), |u| u.state.clone());
            state.version += 1;
            Ok(IngestPlan {
                state: Some(state),
                enqueue: enqueue.clone(),
                trace_context: None,
            })
        };
        ingest_one(&*store, event(event_id, user, at_ms), plan)
            .await
            .expect("ingest");
    }

    fn audit(claim: &Claim, outcome: &str, at_ms: i64) -> AuditRow {
        AuditRow {
            id: 0,
            at_ms,
            integration_id: claim.integration_id.clone(),
            organization_user_id: claim.organization_user_id.clone(),
            state_version: claim.version,
            connector_type: "dotdigital".to_string(),
            connector_version: "0.1.0".to_string(),
            connector_hash: "abc123".to_string(),
            outcome: $crate::AuditOutcome::parse(outcome).expect("a known outcome"),
            detail: String::new(),
            http_statuses: vec![200, 201],
            duration_ms: 12,
            attempt: claim.attempts + 1,
            origin: None,
        }
    }

    async fn claim_one(store: &dyn Store, owner: &str, now_ms: i64) -> Claim {
        let mut claims = store
            .claim_due("crm", owner, now_ms, LEASE, 10)
            .await
            .expect("claim");
        assert_eq!(claims.len(), 1, "{claims:?}");
        claims.remove(0)
    }

    async fn row(store: &dyn Store, user: &str) -> OutboxEntry {
        let filter = DeliveryFilter {
            integration_id: Some("crm".to_string()),
            organization_user_id: Some(user.to_string()),
            ..DeliveryFilter::default()
        };
        let mut rows = store.deliveries(&filter, 0).await.expect("deliveries");
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0).0
    }

    /// A store with integration "crm" and "user" at version 1, due at 100.
    async fn with_one_change() -> (Box<dyn std::any::Any + Send>, Arc<dyn Store>) {
        let (dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        assert_eq!(change(&*store, "e1", 100, &["crm"]).await, 1);
        (dir, store)
    }

    #[tokio::test]
    async fn a_claim_carries_the_trace_context_of_the_newest_change() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let traced = |context: Option<&str>| {
            let context = context.map(str::to_string);
            move |current: Option<&UserRecord>| {
                let mut state = current.map_or_else(|| UserState::new("user"), |u| u.state.clone());
                state.version += 1;
                Ok(IngestPlan {
                    state: Some(state),
                    enqueue: vec!["crm".to_string()],
                    trace_context: context.clone(),
                })
            }
        };
        let first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        ingest_one(&*store, event("e1", "user", 100), traced(Some(first)))
            .await
            .expect("ingest");
        let claim = claim_one(&*store, "host-a", 100).await;
        assert_eq!(claim.trace_context.as_deref(), Some(first));
        store
            .complete(&claim, &Completion::Acked, &audit(&claim, "delivered:updated", 101), 101)
            .await
            .expect("complete");
        // An untraced newer change leaves no stale context behind.
        ingest_one(&*store, event("e2", "user", 200), traced(None))
            .await
            .expect("ingest");
        let claim = claim_one(&*store, "host-a", 200).await;
        assert_eq!(claim.trace_context, None);
    }

    #[tokio::test]
    async fn integration_crud_keeps_created_at() {
        let (_dir, store) = open().await;
        assert_eq!(store.integration("crm").await.expect("get"), None);
        store
            .put_integration(&integration("crm", 10))
            .await
            .expect("put");
        store
            .put_integration(&integration("ads", 11))
            .await
            .expect("put");

        let mut updated = integration("crm", 50);
        updated.enabled = false;
        updated.config = json!({ "id": "crm", "changed": true });
        store.put_integration(&updated).await.expect("update");
        let stored = store
            .integration("crm")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(stored.created_at_ms, 10);
        assert_eq!(stored.updated_at_ms, 50);
        assert!(!stored.enabled);
        assert_eq!(stored.config, json!({ "id": "crm", "changed": true }));

        let ids: Vec<String> = store
            .integrations()
            .await
            .expect("list")
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["ads", "crm"]);

        assert!(store.delete_integration("crm").await.expect("delete"));
        assert!(!store.delete_integration("crm").await.expect("delete again"));
        assert_eq!(store.integration("crm").await.expect("get"), None);
    }

    #[tokio::test]
    async fn every_integration_write_is_counted_once_it_is_over() {
        let (_dir, store) = open().await;
        let count = store.integrations_written();
        store.put_integration(&integration("crm", 10)).await.expect("put");
        assert_eq!(store.integrations_written(), count + 1);
        assert!(!store.insert_integration(&integration("crm", 11)).await.expect("insert"));
        assert_eq!(store.integrations_written(), count + 2, "a refused insert counts too");
        let _ = store.integrations().await.expect("list");
        let _ = store.integration("crm").await.expect("get");
        assert_eq!(store.integrations_written(), count + 2, "reads count nothing");
        assert!(store.delete_integration("crm").await.expect("delete"));
        assert_eq!(store.integrations_written(), count + 3);
    }

    #[tokio::test]
    async fn a_duplicate_event_changes_nothing() {
        let (_dir, store) = with_one_change().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let counting = move |current: Option<&UserRecord>| {
            counted.fetch_add(1, Ordering::SeqCst);
            bump(&["crm"])(current)
        };
        let again = ingest_one(&*store, event("e1", "user", 200), counting)
            .await
            .expect("ingest");
        assert_eq!(again, IngestOutcome::Duplicate);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(
            store
                .user("user")
                .await
                .expect("user")
                .expect("some")
                .state
                .version,
            1
        );
        assert_eq!(
            store
                .events_for_user("user", 10)
                .await
                .expect("events")
                .len(),
            1
        );
        assert_eq!(row(&*store, "user").await.updated_at_ms, 100);
    }

    #[tokio::test]
    async fn a_failing_plan_stores_nothing() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let failing =
            |_: Option<&UserRecord>| -> Result<IngestPlan> { Err(anyhow!("merge failed")) };
        let err = ingest_one(&*store, event("e1", "user", 100), failing)
            .await
            .expect_err("plan error");
        assert!(format!("{err:#}").contains("merge failed"), "{err:#}");
        assert!(
            store
                .events_for_user("user", 10)
                .await
                .expect("events")
                .is_empty()
        );
        assert_eq!(store.user("user").await.expect("user"), None);
        assert_eq!(store.queue_depth().await.expect("depth"), 0);
        // Not remembered as seen: the same event goes through once the plan works.
        assert_eq!(change(&*store, "e1", 100, &["crm"]).await, 1);
    }

    #[tokio::test]
    async fn a_panicking_plan_rolls_back_and_the_store_keeps_working() {
        let (_dir, store) = with_one_change().await;
        let panicking = store.clone();
        let task = tokio::spawn(async move {
            let plan = |_: Option<&UserRecord>| -> Result<IngestPlan> { panic!("plan bug") };
            ingest_one(&*panicking, event("e2", "user", 200), plan).await
        });
        // A store that runs plans on its own thread turns the panic into an
        // error; one that runs them in the caller's task panics the task.
        match task.await {
            Ok(result) => {
                let error = result.expect_err("a panicking plan fails the ingest");
                assert!(format!("{error:#}").contains("plan bug"), "{error:#}");
            }
            Err(join) => assert!(join.is_panic()),
        }
        assert_eq!(
            store
                .events_for_user("user", 10)
                .await
                .expect("events")
                .len(),
            1
        );
        assert_eq!(change(&*store, "e2", 200, &["crm"]).await, 2);
    }

    #[tokio::test]
    async fn ingest_records_the_version_and_skips_unknown_integrations() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let outcome = ingest_one(&*store, event("e1", "user", 100), bump(&["crm", "gone", "crm"]))
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 1,
                enqueued: vec!["crm".to_string()]
            }
        );
        // A plan that changes nothing reports the stored version.
        let unchanged = |_: Option<&UserRecord>| Ok(IngestPlan::default());
        let outcome = ingest_one(&*store, event("e2", "user", 200), unchanged)
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 1,
                enqueued: vec![]
            }
        );
        let outcome = ingest_one(&*store, event("e3", "new-user", 200), unchanged)
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 0,
                enqueued: vec![]
            }
        );
    }

    /// A plan for any user: bumps the version, enqueues "crm".
    fn bump_any(_: usize, event: &StoredEvent, current: Option<&UserRecord>) -> Result<IngestPlan> {
        let mut state = current.map_or_else(
            || UserState::new(event.organization_user_id.clone()),
            |u| u.state.clone(),
        );
        state.version += 1;
        Ok(IngestPlan {
            state: Some(state),
            enqueue: vec!["crm".to_string()],
            trace_context: None,
        })
    }

    #[tokio::test]
    async fn a_batch_is_ingested_in_order_in_one_transaction() {
        let (_dir, store) = with_one_change().await;
        let batch = vec![
            event("b1", "user", 200),
            event("b2", "other", 200),
            event("e1", "user", 200), // known before the batch
            event("b3", "user", 201),
            event("b1", "user", 202), // repeated within the batch
        ];
        let outcomes = store.ingest(batch, Arc::new(bump_any)).await.expect("ingest");
        let crm = || vec!["crm".to_string()];
        assert_eq!(
            outcomes,
            [
                IngestOutcome::Recorded { version: 2, enqueued: crm() },
                IngestOutcome::Recorded { version: 1, enqueued: crm() },
                IngestOutcome::Duplicate,
                // Planned on the state the batch's earlier event left.
                IngestOutcome::Recorded { version: 3, enqueued: crm() },
                IngestOutcome::Duplicate,
            ]
        );
        assert_eq!(row(&*store, "user").await.wanted_version, 3);

        // A plan failing on the batch's last event stores none of it.
        let failing_on_b6 = |index: usize, event: &StoredEvent, current: Option<&UserRecord>| {
            if index == 2 {
                return Err(anyhow!("merge failed on {}", event.event_id));
            }
            bump_any(index, event, current)
        };
        let batch = vec![event("b4", "user", 300), event("b5", "new", 300), event("b6", "user", 301)];
        let error = store
            .ingest(batch, Arc::new(failing_on_b6))
            .await
            .expect_err("the batch fails");
        assert!(format!("{error:#}").contains("merge failed on b6"), "{error:#}");
        assert_eq!(store.user("new").await.expect("user"), None);
        assert_eq!(store.events_for_user("user", 10).await.expect("events").len(), 3);
        assert_eq!(row(&*store, "user").await.wanted_version, 3);
        assert!(store.ingest(Vec::new(), Arc::new(bump_any)).await.expect("empty").is_empty());
    }

    #[tokio::test]
    async fn users_are_read_in_the_order_asked() {
        let (_dir, store) = with_one_change().await;
        change_user(&*store, "bob", "e2", 100, "crm").await;
        let ids = ["bob", "nobody", "user", "bob"].map(str::to_string);
        let versions: Vec<Option<(String, u64)>> = store
            .users(&ids)
            .await
            .expect("users")
            .into_iter()
            .map(|u| u.map(|u| (u.state.organization_user_id, u.state.version)))
            .collect();
        assert_eq!(
            versions,
            [
                Some(("bob".to_string(), 1)),
                None,
                Some(("user".to_string(), 1)),
                Some(("bob".to_string(), 1)),
            ]
        );
        assert!(store.users(&[]).await.expect("none").is_empty());
        // A long list too (a store may read it another way).
        let many: Vec<String> = (0..100)
            .map(|i| if i % 2 == 0 { "bob" } else { "nobody" }.to_string())
            .collect();
        let found: Vec<bool> = store
            .users(&many)
            .await
            .expect("many users")
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(found, (0..100).map(|i| i % 2 == 0).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn completions_of_a_batch_are_recorded_together_each_under_its_lease() {
        let (_dir, store) = with_one_change().await;
        change_user(&*store, "bob", "e2", 100, "crm").await;
        change_user(&*store, "carol", "e3", 100, "crm").await;
        let claims = store.claim_due("crm", "a", 200, LEASE, 10).await.expect("claim");
        assert_eq!(claims.len(), 3);
        let mut lost = claims[2].clone();
        lost.lease_owner = "someone else".to_string();
        let completed = vec![
            Completed {
                claim: claims[0].clone(),
                completion: Completion::Acked,
                audit: audit(&claims[0], "delivered:updated", 210),
            },
            Completed {
                claim: claims[1].clone(),
                completion: Completion::Retry { next_attempt_at_ms: 5_000, error: "503".into() },
                audit: audit(&claims[1], "failed:retryable", 210),
            },
            Completed {
                claim: lost.clone(),
                completion: Completion::Acked,
                audit: audit(&lost, "delivered:updated", 210),
            },
        ];
        let held = store.complete_all(completed, 210).await.expect("complete");
        assert_eq!(held, [true, true, false]);
        let first = row(&*store, &claims[0].organization_user_id).await;
        assert_eq!((first.acked_version, first.lease_owner), (1, None));
        let second = row(&*store, &claims[1].organization_user_id).await;
        assert_eq!((second.attempts, second.next_attempt_at_ms), (1, 5_000));
        let third = row(&*store, &claims[2].organization_user_id).await;
        assert_eq!((third.acked_version, third.lease_owner.as_deref()), (0, Some("a")));
        let audited = |user: String| {
            let store = store.clone();
            async move { store.audit_for_user(&user, 10).await.expect("audit").len() }
        };
        assert_eq!(audited(claims[0].organization_user_id.clone()).await, 1);
        assert_eq!(audited(claims[1].organization_user_id.clone()).await, 1);
        assert_eq!(audited(claims[2].organization_user_id.clone()).await, 0);
        assert!(store.complete_all(Vec::new(), 220).await.expect("empty").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_ingests_for_one_user_do_not_lose_updates() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(
                    async move { change(&*store, &format!("e{i}"), 100 + i, &["crm"]).await },
                )
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(
            store
                .user("user")
                .await
                .expect("user")
                .expect("some")
                .state
                .version,
            20
        );
        assert_eq!(row(&*store, "user").await.wanted_version, 20);
    }

    #[tokio::test]
    async fn changes_before_a_claim_coalesce_into_one_claim_of_the_newest_version() {
        let (_dir, store) = with_one_change().await;
        assert_eq!(change(&*store, "e2", 150, &["crm"]).await, 2);
        assert_eq!(store.queue_depth().await.expect("depth"), 1);
        let claim = claim_one(&*store, "a", 200).await;
        assert_eq!((claim.version, claim.attempts), (2, 0));
        assert_eq!(
            (claim.lease_owner.as_str(), claim.lease_until_ms),
            ("a", 200 + LEASE)
        );
    }

    #[tokio::test]
    async fn a_leased_row_is_not_claimed_twice() {
        let (_dir, store) = with_one_change().await;
        claim_one(&*store, "a", 200).await;
        assert!(
            store
                .claim_due("crm", "b", 300, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        assert!(
            store
                .claim_due("crm", "a", 300, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        // Not due before its time either, nor for another integration.
        let (_dir2, fresh) = with_one_change().await;
        assert!(
            fresh
                .claim_due("crm", "a", 99, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        assert!(
            fresh
                .claim_due("other", "a", 200, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn claims_are_oldest_due_first_and_limited() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        change_user(&*store, "u3", "e1", 100, "crm").await;
        change_user(&*store, "u1", "e2", 300, "crm").await;
        change_user(&*store, "u2", "e3", 100, "crm").await;
        let claims = store
            .claim_due("crm", "a", 1_000, LEASE, 2)
            .await
            .expect("claim");
        let users: Vec<&str> = claims
            .iter()
            .map(|c| c.organization_user_id.as_str())
            .collect();
        assert_eq!(users, ["u2", "u3"]);
        let rest = store
            .claim_due("crm", "a", 1_000, LEASE, 2)
            .await
            .expect("claim");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].organization_user_id, "u1");
    }

    #[tokio::test]
    async fn an_expired_lease_moves_to_another_owner_and_the_old_completion_is_refused() {
        let (_dir, store) = with_one_change().await;
        let old = claim_one(&*store, "a", 200).await;
        let new = claim_one(&*store, "b", old.lease_until_ms).await;
        assert_eq!(new.version, 1);
        let before = row(&*store, "user").await;

        for completion in [
            Completion::Acked,
            Completion::Retry {
                next_attempt_at_ms: 5_000,
                error: "503".to_string(),
            },
            Completion::DeadLetter {
                error: "400".to_string(),
            },
        ] {
            let done = store
                .complete(
                    &old,
                    &completion,
                    &audit(&old, "delivered:updated", 1_300),
                    1_300,
                )
                .await
                .expect("complete");
            assert!(!done, "{completion:?}");
        }
        assert_eq!(row(&*store, "user").await, before);
        assert!(
            store
                .audit_for_user("user", 10)
                .await
                .expect("audit")
                .is_empty()
        );
        assert!(store.dead_letters(None).await.expect("dead").is_empty());

        assert!(
            store
                .complete(
                    &new,
                    &Completion::Acked,
                    &audit(&new, "delivered:updated", 1_400),
                    1_400
                )
                .await
                .expect("complete")
        );
        assert_eq!(store.queue_depth().await.expect("depth"), 0);
    }

    #[tokio::test]
    async fn an_ack_while_the_user_changed_leaves_the_row_due_at_once() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&*store, "a", 200).await;
        assert_eq!(change(&*store, "e2", 250, &["crm"]).await, 2);
        assert!(
            store
                .complete(
                    &claim,
                    &Completion::Acked,
                    &audit(&claim, "delivered:updated", 300),
                    300
                )
                .await
                .expect("complete")
        );
        let entry = row(&*store, "user").await;
        assert_eq!((entry.wanted_version, entry.acked_version), (2, 1));
        assert_eq!((entry.lease_owner, entry.lease_until_ms), (None, None));
        assert_eq!((entry.next_attempt_at_ms, entry.updated_at_ms), (300, 300));
        let next = claim_one(&*store, "a", 300).await;
        assert_eq!((next.version, next.attempts), (2, 0));
    }

    /// What `queue_stats` says of "crm": (pending, oldest since, dead letters).
    async fn crm_stats(store: &dyn Store) -> (u64, Option<i64>, u64) {
        let stats = store.queue_stats().await.expect("stats");
        let crm = stats
            .iter()
            .find(|s| s.integration_id == "crm")
            .expect("crm listed");
        (crm.pending, crm.oldest_pending_since_ms, crm.dead_letters)
    }

    async fn ack(store: &dyn Store, claim: &Claim, now_ms: i64) {
        assert!(
            store
                .complete(
                    claim,
                    &Completion::Acked,
                    &audit(claim, "delivered:updated", now_ms),
                    now_ms
                )
                .await
                .expect("complete")
        );
    }

    #[tokio::test]
    async fn queue_stats_follow_the_oldest_waiting_change_and_the_dead_letters() {
        let (_dir, store) = open().await;
        for id in ["crm", "other"] {
            store.put_integration(&integration(id, 1)).await.expect("put");
        }
        let ids: Vec<String> = store
            .queue_stats()
            .await
            .expect("stats")
            .into_iter()
            .map(|s| s.integration_id)
            .collect();
        assert_eq!(ids, ["crm", "other"], "every integration, zeros included");
        assert_eq!(crm_stats(&*store).await, (0, None, 0));

        change(&*store, "e1", 100, &["crm"]).await;
        // A newer change to a row already waiting keeps the older wait.
        change(&*store, "e2", 150, &["crm"]).await;
        assert_eq!(crm_stats(&*store).await, (1, Some(100), 0));

        // A change that arrives during a call waits from the call's end.
        let claim = claim_one(&*store, "a", 200).await;
        change(&*store, "e3", 250, &["crm"]).await;
        ack(&*store, &claim, 300).await;
        assert_eq!(crm_stats(&*store).await, (1, Some(300), 0));
        // A retry keeps the wait.
        let claim = claim_one(&*store, "a", 300).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 350,
            error: "503".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 320), 320)
                .await
                .expect("complete")
        );
        assert_eq!(crm_stats(&*store).await, (1, Some(300), 0));
        let claim = claim_one(&*store, "a", 400).await;
        ack(&*store, &claim, 400).await;
        assert_eq!(crm_stats(&*store).await, (0, None, 0));

        change(&*store, "e4", 500, &["crm"]).await;
        dead_letter(&*store, 600).await;
        assert_eq!(crm_stats(&*store).await, (0, None, 1));
        let id = store.dead_letters(None).await.expect("dead")[0].id;
        assert!(store.replay_dead_letter(id, 700).await.expect("replay"));
        assert_eq!(crm_stats(&*store).await, (1, Some(700), 0));
        let other = store.queue_stats().await.expect("stats")[1].clone();
        assert_eq!((other.pending, other.dead_letters), (0, 0));
    }

    #[tokio::test]
    async fn a_retry_waits_for_its_time_and_counts_attempts() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&*store, "a", 200).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 5_000,
            error: "503 Service Unavailable".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 300), 300)
                .await
                .expect("complete")
        );
        let entry = row(&*store, "user").await;
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.last_error.as_deref(), Some("503 Service Unavailable"));
        assert_eq!(entry.next_attempt_at_ms, 5_000);
        assert_eq!(store.queue_depth().await.expect("depth"), 1);
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(5_000));
        assert!(
            store
                .claim_due("crm", "a", 4_999, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );

        let again = claim_one(&*store, "a", 5_000).await;
        assert_eq!((again.version, again.attempts), (1, 1));
        assert!(
            store
                .complete(
                    &again,
                    &Completion::Acked,
                    &audit(&again, "delivered:updated", 5_100),
                    5_100
                )
                .await
                .expect("complete")
        );
        let entry = row(&*store, "user").await;
        assert_eq!((entry.attempts, entry.last_error), (0, None));
    }

    #[tokio::test]
    async fn a_change_during_a_scheduled_retry_keeps_the_retry_time() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&*store, "a", 200).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 5_000,
            error: "timeout".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 300), 300)
                .await
                .expect("complete")
        );
        assert_eq!(change(&*store, "e2", 400, &["crm"]).await, 2);
        let entry = row(&*store, "user").await;
        assert_eq!(
            (
                entry.wanted_version,
                entry.next_attempt_at_ms,
                entry.attempts
            ),
            (2, 5_000, 1)
        );
        assert_eq!(entry.last_error.as_deref(), Some("timeout"));
        assert!(
            store
                .claim_due("crm", "a", 400, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        let again = claim_one(&*store, "a", 5_000).await;
        assert_eq!((again.version, again.attempts), (2, 1));
    }

    #[tokio::test]
    async fn a_dead_letter_is_recorded_and_acknowledged() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&*store, "a", 200).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 300,
            error: "503".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 250), 250)
                .await
                .expect("complete")
        );
        let claim = claim_one(&*store, "a", 300).await;
        let dead = Completion::DeadLetter {
            error: "400 bad address".to_string(),
        };
        assert!(
            store
                .complete(&claim, &dead, &audit(&claim, "dead_letter", 400), 400)
                .await
                .expect("complete")
        );

        let letters = store.dead_letters(Some("crm")).await.expect("dead");
        assert_eq!(
            letters,
            [DeadLetter {
                id: letters[0].id,
                integration_id: "crm".to_string(),
                organization_user_id: "user".to_string(),
                version: 1,
                attempts: 2,
                last_error: "400 bad address".to_string(),
                created_at_ms: 400,
                replayed_at_ms: None,
            }]
        );
        let entry = row(&*store, "user").await;
        assert_eq!((entry.acked_version, entry.attempts), (1, 0));
        assert_eq!(entry.last_error.as_deref(), Some("400 bad address"));
        assert_eq!(store.queue_depth().await.expect("depth"), 0);
        assert_eq!(store.next_due_at("crm").await.expect("due"), None);
        let outcomes: Vec<String> = store
            .audit_for_user("user", 10)
            .await
            .expect("audit")
            .into_iter()
            .map(|row| row.outcome.to_string())
            .collect();
        assert_eq!(outcomes, ["failed:retryable", "dead_letter"]);
    }

    /// Dead-letters the current claim of "user".
    async fn dead_letter(store: &dyn Store, now_ms: i64) -> Claim {
        let claim = claim_one(store, "a", now_ms).await;
        let dead = Completion::DeadLetter {
            error: "permanent".to_string(),
        };
        assert!(
            store
                .complete(&claim, &dead, &audit(&claim, "dead_letter", now_ms), now_ms)
                .await
                .expect("complete")
        );
        claim
    }

    #[tokio::test]
    async fn a_replay_requeues_once_and_carries_the_latest_version() {
        let (_dir, store) = with_one_change().await;
        dead_letter(&*store, 200).await;
        // Version 2 is delivered meanwhile.
        assert_eq!(change(&*store, "e2", 300, &["crm"]).await, 2);
        let claim = claim_one(&*store, "a", 300).await;
        assert!(
            store
                .complete(
                    &claim,
                    &Completion::Acked,
                    &audit(&claim, "delivered:updated", 350),
                    350
                )
                .await
                .expect("complete")
        );
        assert_eq!(store.queue_depth().await.expect("depth"), 0);

        let id = store.dead_letters(None).await.expect("dead")[0].id;
        assert!(store.replay_dead_letter(id, 400).await.expect("replay"));
        assert!(
            !store
                .replay_dead_letter(id, 500)
                .await
                .expect("replay again")
        );
        assert!(
            !store
                .replay_dead_letter(id + 100, 500)
                .await
                .expect("unknown")
        );
        assert_eq!(
            store.dead_letters(None).await.expect("dead")[0].replayed_at_ms,
            Some(400)
        );

        let entry = row(&*store, "user").await;
        assert_eq!((entry.wanted_version, entry.acked_version), (2, 0));
        assert_eq!(
            (entry.next_attempt_at_ms, entry.attempts, entry.last_error),
            (400, 0, None)
        );
        let replayed = claim_one(&*store, "a", 400).await;
        assert_eq!((replayed.version, replayed.attempts), (2, 0));
    }

    #[tokio::test]
    async fn replaying_an_integration_counts_its_requeued_dead_letters() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        store
            .put_integration(&integration("ads", 1))
            .await
            .expect("put");
        change_user(&*store, "u1", "e1", 100, "crm").await;
        change_user(&*store, "u2", "e2", 100, "crm").await;
        change_user(&*store, "u1", "e3", 100, "ads").await;
        let dead = Completion::DeadLetter {
            error: "no".to_string(),
        };
        for integration_id in ["crm", "ads"] {
            for claim in store
                .claim_due(integration_id, "a", 200, LEASE, 10)
                .await
                .expect("claim")
            {
                assert!(
                    store
                        .complete(&claim, &dead, &audit(&claim, "dead_letter", 200), 200)
                        .await
                        .expect("complete")
                );
            }
        }
        assert_eq!(store.dead_letters(None).await.expect("dead").len(), 3);
        assert_eq!(store.queue_depth().await.expect("depth"), 0);

        assert_eq!(
            store.replay_integration("crm", 300).await.expect("replay"),
            2
        );
        assert_eq!(
            store.replay_integration("crm", 400).await.expect("replay"),
            0
        );
        assert_eq!(store.queue_depth().await.expect("depth"), 2);
        let unreplayed: Vec<String> = store
            .dead_letters(None)
            .await
            .expect("dead")
            .into_iter()
            .filter(|letter| letter.replayed_at_ms.is_none())
            .map(|letter| letter.integration_id)
            .collect();
        assert_eq!(unreplayed, ["ads"]);
    }

    #[tokio::test]
    async fn deleting_an_integration_keeps_its_history() {
        let (_dir, store) = with_one_change().await;
        store
            .put_integration(&integration("ads", 1))
            .await
            .expect("put");
        let claim = dead_letter(&*store, 200).await;
        store
            .append_audit(&audit(&claim, "skipped", 210))
            .await
            .expect("audit");
        assert_eq!(change(&*store, "e2", 300, &["crm", "ads"]).await, 2);

        assert!(store.delete_integration("crm").await.expect("delete"));
        let rows = store
            .deliveries(&DeliveryFilter::default(), 300)
            .await
            .expect("deliveries");
        let integrations: Vec<&str> = rows
            .iter()
            .map(|(e, _)| e.integration_id.as_str())
            .collect();
        assert_eq!(integrations, ["ads"]);
        assert_eq!(store.queue_depth().await.expect("depth"), 1);
        assert_eq!(
            store.audit_for_user("user", 10).await.expect("audit").len(),
            2
        );
        let letters = store.dead_letters(Some("crm")).await.expect("dead");
        assert_eq!(letters.len(), 1);

        // Nothing to re-queue into: marked replayed, reported as not re-queued.
        assert!(
            !store
                .replay_dead_letter(letters[0].id, 400)
                .await
                .expect("replay")
        );
        assert_eq!(
            store.dead_letters(Some("crm")).await.expect("dead")[0].replayed_at_ms,
            Some(400)
        );
        // Enqueueing for it is skipped.
        let outcome = ingest_one(&*store, event("e3", "user", 500), bump(&["crm", "ads"]))
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 3,
                enqueued: vec!["ads".to_string()]
            }
        );
    }

    #[tokio::test]
    async fn deliveries_compute_status_filter_order_and_limit() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        store
            .put_integration(&integration("ads", 1))
            .await
            .expect("put");
        change_user(&*store, "done", "e1", 100, "crm").await;
        change_user(&*store, "flying", "e2", 110, "crm").await;
        change_user(&*store, "waiting", "e3", 500, "crm").await;
        change_user(&*store, "other", "e4", 120, "ads").await;
        // "done" is delivered at 200, "flying" is claimed at 300 (lease to 1300).
        let claim = store
            .claim_due("crm", "a", 100, LEASE, 1)
            .await
            .expect("claim")
            .remove(0);
        assert_eq!(claim.organization_user_id, "done");
        assert!(
            store
                .complete(
                    &claim,
                    &Completion::Acked,
                    &audit(&claim, "delivered:created", 200),
                    200
                )
                .await
                .expect("complete")
        );
        let claim = store
            .claim_due("crm", "a", 300, LEASE, 1)
            .await
            .expect("claim")
            .remove(0);
        assert_eq!(claim.organization_user_id, "flying");

        let list = |filter: DeliveryFilter, now_ms: i64| {
            let store = store.clone();
            async move {
                store
                    .deliveries(&filter, now_ms)
                    .await
                    .expect("deliveries")
                    .into_iter()
                    .map(|(entry, status)| (entry.organization_user_id, status))
                    .collect::<Vec<_>>()
            }
        };
        let s = |user: &str, status| (user.to_string(), status);
        use DeliveryStatus::{Done, InFlight, Pending};

        assert_eq!(
            list(DeliveryFilter::default(), 1_000).await,
            [
                s("waiting", Pending),
                s("flying", InFlight),
                s("done", Done),
                s("other", Pending)
            ]
        );
        // Once the lease ran out the row is pending again.
        let crm = DeliveryFilter {
            integration_id: Some("crm".to_string()),
            ..DeliveryFilter::default()
        };
        assert_eq!(
            list(crm.clone(), 1_300).await,
            [s("waiting", Pending), s("flying", Pending), s("done", Done)]
        );
        let pending = DeliveryFilter {
            status: Some(Pending),
            limit: 1,
            ..crm.clone()
        };
        assert_eq!(list(pending, 1_000).await, [s("waiting", Pending)]);
        let in_flight = DeliveryFilter {
            status: Some(InFlight),
            ..DeliveryFilter::default()
        };
        assert_eq!(list(in_flight, 1_000).await, [s("flying", InFlight)]);
        let one_user = DeliveryFilter {
            organization_user_id: Some("other".to_string()),
            ..DeliveryFilter::default()
        };
        assert_eq!(list(one_user, 1_000).await, [s("other", Pending)]);
        let done_elsewhere = DeliveryFilter {
            integration_id: Some("ads".to_string()),
            status: Some(Done),
            ..DeliveryFilter::default()
        };
        assert!(list(done_elsewhere, 1_000).await.is_empty());

        assert_eq!(store.queue_depth().await.expect("depth"), 3);
    }

    #[tokio::test]
    async fn next_due_at_accounts_for_leases_and_schedules() {
        let (_dir, store) = open().await;
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        assert_eq!(store.next_due_at("crm").await.expect("due"), None);
        change_user(&*store, "u1", "e1", 100, "crm").await;
        change_user(&*store, "u2", "e2", 700, "crm").await;
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(100));
        // u1 leased until 1200: u2 (due at 700) is next.
        let claim = store
            .claim_due("crm", "a", 200, LEASE, 1)
            .await
            .expect("claim")
            .remove(0);
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(700));
        claim_one_of(&*store, 800, "u2").await;
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(1_200));
        store.release(&[claim]).await.expect("release");
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(100));
        assert_eq!(store.next_due_at("other").await.expect("due"), None);
    }

    async fn claim_one_of(store: &dyn Store, now_ms: i64, user: &str) -> Claim {
        let claim = claim_one(store, "a", now_ms).await;
        assert_eq!(claim.organization_user_id, user);
        claim
    }

    #[tokio::test]
    async fn release_makes_rows_due_again_but_only_for_the_lease_holder() {
        let (_dir, store) = with_one_change().await;
        let stale = claim_one(&*store, "a", 200).await;
        let held = claim_one(&*store, "b", stale.lease_until_ms).await;
        // A stale claim does not release the new holder's lease.
        store.release(&[stale]).await.expect("release");
        assert!(
            store
                .claim_due("crm", "c", 1_300, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        store
            .release(std::slice::from_ref(&held))
            .await
            .expect("release");
        let entry = row(&*store, "user").await;
        assert_eq!((entry.lease_owner, entry.lease_until_ms), (None, None));
        let again = claim_one(&*store, "c", 1_300).await;
        assert_eq!((again.version, again.attempts), (1, 0));
        // The released claim can no longer complete.
        assert!(
            !store
                .complete(
                    &held,
                    &Completion::Acked,
                    &audit(&held, "skipped", 1_300),
                    1_300
                )
                .await
                .expect("complete")
        );
    }

    #[tokio::test]
    async fn audit_is_oldest_first_and_events_newest_first() {
        let (_dir, store) = with_one_change().await;
        change(&*store, "e2", 300, &["crm"]).await;
        change(&*store, "e3", 200, &["crm"]).await;
        change(&*store, "e4", 300, &["crm"]).await;
        let events: Vec<String> = store
            .events_for_user("user", 3)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(events, ["e4", "e2", "e3"]);
        let stored = &store.events_for_user("user", 10).await.expect("events")[3];
        assert_eq!(stored, &event("e1", "user", 100));
        assert!(
            store
                .events_for_user("nobody", 10)
                .await
                .expect("events")
                .is_empty()
        );

        let claim = claim_one(&*store, "a", 400).await;
        let mut first = audit(&claim, "delivered:created", 500);
        first.origin = Some("crm".to_string());
        first.id = 77; // ignored
        store.append_audit(&first).await.expect("audit");
        store
            .append_audit(&audit(&claim, "skipped", 400))
            .await
            .expect("audit");
        store
            .append_audit(&audit(&claim, "delivered:updated", 600))
            .await
            .expect("audit");
        let rows = store.audit_for_user("user", 2).await.expect("audit");
        let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["delivered:created", "skipped"]);
        assert!(rows[0].id < rows[1].id);
        assert_eq!(
            rows[0],
            AuditRow {
                id: rows[0].id,
                ..first
            }
        );
    }


    /// A state for `user` with a newsletter choice stamped `at_ms`.
    fn stamped_state(user: &str, at_ms: i64) -> UserState {
        let body = json!({
            "id": format!("{user}-{at_ms}"),
            "created_at": "2026-11-23T10:00:00Z",
            "user": {"organization_user_id": user, "country": "FR"},
            "consents": {"purposes": [{"id": "newsletter", "enabled": true}]},
        });
        let mut events = prefsync_consent::parse_body(None, body.to_string().as_bytes())
            .expect("valid event");
        events[0].created_at_ms = at_ms;
        let mut state = UserState::new(user);
        state.apply(&events[0]);
        state
    }

    #[tokio::test]
    async fn stamps_from_the_future_are_clamped_and_nothing_else_changes() {
        let (_keep, store) = open().await;
        const NOW: i64 = 1_800_000_000_000;
        const YEAR_9999: i64 = 253_402_300_799_000;
        for (user, at_ms) in [("pinned", YEAR_9999), ("present", NOW - 1)] {
            let state = stamped_state(user, at_ms);
            let plan = move |_: Option<&UserRecord>| {
                Ok(IngestPlan {
                    state: Some(state.clone()),
                    enqueue: Vec::new(),
                    trace_context: None,
                })
            };
            ingest_one(&*store, event(&format!("e-{user}"), user, 100), plan)
                .await
                .expect("ingest");
        }
        let present = store.user("present").await.expect("user").expect("stored");

        let limit = NOW + 300_000;
        assert_eq!(store.clamp_future_stamps(limit, NOW).await.expect("clamp"), 1);
        let pinned = store.user("pinned").await.expect("user").expect("stored");
        let newsletter = pinned.state.purposes["newsletter"].enabled.as_ref().expect("set");
        assert_eq!((newsletter.value, newsletter.at_ms), (Some(true), NOW));
        assert_eq!(pinned.state.country.as_ref().expect("set").at_ms, NOW);
        assert_eq!(pinned.state.updated_at_ms, NOW);
        assert_eq!(pinned.state.version, 1, "values and version untouched");
        assert_eq!(pinned.updated_at_ms, 100);
        assert_eq!(
            store.user("present").await.expect("user").expect("stored"),
            present
        );
        // Idempotent: nothing is left beyond the limit.
        assert_eq!(store.clamp_future_stamps(limit, NOW).await.expect("clamp"), 0);
        assert_eq!(store.queue_depth().await.expect("depth"), 0, "nothing to deliver");
    }

    fn activation_record(id: &str, next_run_at_ms: Option<i64>) -> $crate::ActivationRecord {
        $crate::ActivationRecord {
            id: id.to_string(),
            integration_id: "engage".to_string(),
            config: json!({ "id": id }),
            created_at_ms: 10,
            updated_at_ms: 10,
            next_run_at_ms,
        }
    }

    fn run_start(host: &str, now_ms: i64) -> $crate::RunStart {
        $crate::RunStart {
            trigger: $crate::RunTrigger::Schedule,
            host: host.to_string(),
            full_resync: false,
            now_ms,
            lease_ms: LEASE,
        }
    }

    #[tokio::test]
    async fn runs_of_one_activation_never_overlap_and_a_lapsed_lease_is_abandoned() {
        use $crate::RunStatus;
        let (_keep, store) = open().await;
        store.put_activation(&activation_record("users", None)).await.expect("put");
        assert_eq!(store.begin_run("nope", &run_start("a", 100)).await.expect("begin"), None);
        let first = store.begin_run("users", &run_start("a", 100)).await.expect("begin").expect("free");
        assert_eq!(store.begin_run("users", &run_start("b", 200)).await.expect("begin"), None);
        assert!(store.renew_run("users", first, 100 + 2 * LEASE).await.expect("renew"));
        assert_eq!(store.begin_run("users", &run_start("b", 100 + LEASE + 1)).await.expect("begin"), None);
        // The holder died: once its lease lapses another run starts and the first is abandoned.
        let second = store.begin_run("users", &run_start("b", 100 + 2 * LEASE + 1)).await.expect("begin").expect("lapsed");
        assert!(!store.renew_run("users", first, 10_000).await.expect("renew"));
        store
            .finish_run("users", second, RunStatus::Succeeded, &json!({"rows_read": 3}), 5_000, Some(9_000))
            .await
            .expect("finish");
        let runs = store.runs("users", 10).await.expect("runs");
        let statuses: Vec<(i64, RunStatus, &str)> = runs.iter().map(|r| (r.id, r.status, r.host.as_str())).collect();
        assert_eq!(statuses, [(second, RunStatus::Succeeded, "b"), (first, RunStatus::Abandoned, "a")]);
        assert_eq!(runs[0].summary, json!({"rows_read": 3}));
        assert_eq!(runs[0].finished_at_ms, Some(5_000));
        assert_eq!(store.activation("users").await.expect("get").expect("kept").next_run_at_ms, Some(9_000));
        assert!(store.begin_run("users", &run_start("a", 5_001)).await.expect("begin").is_some());
    }

    #[tokio::test]
    async fn each_due_run_is_taken_by_one_caller() {
        let (_keep, store) = open().await;
        store.put_activation(&activation_record("due", Some(1_000))).await.expect("put");
        store.put_activation(&activation_record("later", Some(50_000))).await.expect("put");
        store.put_activation(&activation_record("manual", None)).await.expect("put");
        let takers = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.begin_due_run(&run_start(&format!("host{i}"), 2_000)).await })
        });
        let mut taken = Vec::new();
        for taker in takers {
            if let Some((record, _)) = taker.await.expect("task").expect("begin_due_run") {
                taken.push(record.id);
            }
        }
        assert_eq!(taken, ["due"]);
    }

    #[tokio::test]
    async fn the_snapshot_numbers_keys_once_and_keeps_what_was_accepted() {
        let (_keep, store) = open().await;
        store.put_activation(&activation_record("users", None)).await.expect("put");
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let numbered = |entries: &[$crate::SnapshotEntry]| {
            entries.iter().map(|e| (e.key.clone(), e.key_number)).collect::<Vec<_>>()
        };
        let first = store.snapshot_lookup("users", keys(&["a", "b"])).await.expect("lookup");
        assert!(first.iter().all(|e| e.accepted.is_none()));
        assert_eq!(numbered(&first), [("a".into(), 1), ("b".into(), 2)]);
        // A key looked up again (later in the run, or in the next one) keeps its number.
        let again = store.snapshot_lookup("users", keys(&["b", "c"])).await.expect("lookup");
        assert_eq!(numbered(&again), [("b".into(), 2), ("c".into(), 3)]);
        store.snapshot_accept("users", vec![("a".into(), vec![1, 2]), ("c".into(), vec![3])]).await.expect("accept");
        assert_eq!(store.snapshot_size("users").await.expect("size"), 2);
        let next = store.snapshot_lookup("users", keys(&["c", "a", "b"])).await.expect("lookup");
        let seen: Vec<(&str, u64, Option<Vec<u8>>)> = next.iter().map(|e| (e.key.as_str(), e.key_number, e.accepted.clone())).collect();
        assert_eq!(seen, [("c", 3, Some(vec![3])), ("a", 1, Some(vec![1, 2])), ("b", 2, None)]);
        // Replacing the activation keeps its snapshot and its numbering;
        // another activation numbers its own keys.
        store.put_activation(&activation_record("users", Some(99))).await.expect("replace");
        let known_and_new = store.snapshot_lookup("users", keys(&["a", "d"])).await.expect("lookup");
        assert_eq!(numbered(&known_and_new), [("a".into(), 1), ("d".into(), 4)]);
        store.put_activation(&activation_record("leads", None)).await.expect("put");
        let other = store.snapshot_lookup("leads", keys(&["d", "a"])).await.expect("lookup");
        assert_eq!(numbered(&other), [("d".into(), 1), ("a".into(), 2)]);
        assert!(other.iter().all(|e| e.accepted.is_none()));
        // No snapshot without its activation.
        assert!(store.snapshot_lookup("nobody", keys(&["a"])).await.is_err());
        assert!(store.delete_activation("users").await.expect("delete"));
        assert_eq!(store.snapshot_size("users").await.expect("size"), 0);
        assert!(store.runs("users", 5).await.expect("runs").is_empty());
        store.put_activation(&activation_record("users", None)).await.expect("put again");
        let fresh = store.snapshot_lookup("users", keys(&["b"])).await.expect("lookup");
        assert_eq!((fresh[0].key_number, fresh[0].accepted.clone()), (1, None));
    }

    /// Runs 12 inserts at once (`insert(i)` says whether writer `i`
    /// inserted); the writers that did.
    async fn racing_inserts<F, Fut>(insert: F) -> Vec<i64>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        let tasks: Vec<_> = (0..12).map(|i| (i, tokio::spawn(insert(i)))).collect();
        let mut winners = Vec::new();
        for (i, task) in tasks {
            if task.await.expect("task") {
                winners.push(i);
            }
        }
        winners
    }

    #[tokio::test]
    async fn inserting_an_existing_id_writes_nothing_and_concurrent_inserts_have_one_winner() {
        let (_keep, store) = open().await;
        let winners = racing_inserts(|i| {
            let store = store.clone();
            async move {
                let mut record = integration("crm", 10 + i);
                record.config = json!({ "id": "crm", "writer": i });
                store.insert_integration(&record).await.expect("insert")
            }
        })
        .await;
        assert_eq!(winners.len(), 1, "{winners:?}");
        let stored = store.integration("crm").await.expect("get").expect("exists");
        assert_eq!(stored.config, json!({ "id": "crm", "writer": winners[0] }));
        assert_eq!(stored.created_at_ms, 10 + winners[0]);

        let winners = racing_inserts(|i| {
            let store = store.clone();
            async move {
                let mut record = activation_record("users", None);
                record.config = json!({ "id": "users", "writer": i });
                store.insert_activation(&record).await.expect("insert")
            }
        })
        .await;
        assert_eq!(winners.len(), 1, "{winners:?}");
        let stored = store.activation("users").await.expect("get").expect("exists");
        assert_eq!(stored.config, json!({ "id": "users", "writer": winners[0] }));

        // A put replaces; an insert over it still changes nothing.
        store.put_activation(&activation_record("users", Some(7))).await.expect("put");
        assert!(!store.insert_activation(&activation_record("users", None)).await.expect("insert"));
        assert_eq!(store.activation("users").await.expect("get").expect("kept").next_run_at_ms, Some(7));
        assert!(store.insert_activation(&activation_record("other", None)).await.expect("insert"));
    }


    /// An audit row of `integration` made at `at_ms`, with `outcome`.
    fn audit_of(integration: &str, outcome: &str, at_ms: i64) -> AuditRow {
        AuditRow {
            id: 0,
            at_ms,
            integration_id: integration.to_string(),
            organization_user_id: "user".to_string(),
            state_version: 1,
            connector_type: "dotdigital".to_string(),
            connector_version: "0.1.0".to_string(),
            connector_hash: "abc123".to_string(),
            outcome: $crate::AuditOutcome::parse(outcome).expect("a known outcome"),
            detail: format!("{outcome} at {at_ms}"),
            http_statuses: vec![503],
            duration_ms: 5,
            attempt: 1,
            origin: None,
        }
    }

    #[tokio::test]
    async fn delivery_counts_group_by_integration_bucket_and_outcome_from_since() {
        let (_keep, store) = open().await;
        for (integration, outcome, at_ms) in [
            ("crm", "delivered:created", 999), // before `since`
            ("crm", "delivered:created", 1_000), // the first bucket's first instant
            ("crm", "delivered:updated", 1_099), // its last
            ("crm", "failed:retryable", 1_100), // the second bucket's first
            ("crm", "failed:retryable", 1_150),
            ("crm", "dead_letter", 1_350),
            ("mail", "skipped", 1_000),
            ("mail", "failed:permanent", 5_000), // far past the caller's window
        ] {
            store.append_audit(&audit_of(integration, outcome, at_ms)).await.expect("audit");
        }
        let counts: Vec<(String, i64, &str, u64)> = store
            .delivery_counts(1_000, 100)
            .await
            .expect("counts")
            .into_iter()
            .map(|c| (c.integration_id, c.bucket, c.outcome.as_str(), c.count))
            .collect();
        let expected: Vec<(String, i64, &str, u64)> = [
            ("crm", 0, "delivered:created", 1),
            ("crm", 0, "delivered:updated", 1),
            ("crm", 1, "failed:retryable", 2),
            ("crm", 3, "dead_letter", 1),
            ("mail", 0, "skipped", 1),
            ("mail", 40, "failed:permanent", 1),
        ]
        .into_iter()
        .map(|(i, b, o, n)| (i.to_string(), b, o, n))
        .collect();
        assert_eq!(counts, expected);
        // One bucket as wide as the window: totals per outcome.
        let whole: Vec<(String, i64, u64)> = store
            .delivery_counts(1_100, 1_000_000)
            .await
            .expect("counts")
            .into_iter()
            .map(|c| (c.integration_id, c.bucket, c.count))
            .collect();
        assert_eq!(
            whole,
            [("crm".to_string(), 0, 1), ("crm".to_string(), 0, 2), ("mail".to_string(), 0, 1)]
        );
        assert!(store.delivery_counts(6_000, 100).await.expect("counts").is_empty());
        assert!(store.delivery_counts(0, 0).await.is_err(), "a zero-wide bucket");
    }

    #[tokio::test]
    async fn latest_failures_are_the_newest_failed_attempt_of_each_integration_since() {
        let (_keep, store) = open().await;
        for (integration, outcome, at_ms) in [
            ("crm", "failed:retryable", 1_000),
            ("crm", "failed:permanent", 1_200),
            ("crm", "delivered:updated", 1_300), // not a failure
            ("crm", "skipped", 1_400),           // nor this
            ("mail", "failed:canary", 900),      // before `since`
            ("mail", "dead_letter", 1_100),
            ("ok", "delivered:created", 1_500),
        ] {
            store.append_audit(&audit_of(integration, outcome, at_ms)).await.expect("audit");
        }
        let failures = store.latest_failures(1_000).await.expect("failures");
        let shown: Vec<(&str, &str, i64, &str)> = failures
            .iter()
            .map(|r| (r.integration_id.as_str(), r.outcome.as_str(), r.at_ms, r.detail.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("crm", "failed:permanent", 1_200, "failed:permanent at 1200"),
                ("mail", "dead_letter", 1_100, "dead_letter at 1100"),
            ]
        );
        assert_eq!(failures[0].http_statuses, [503]);
        let later = store.latest_failures(1_150).await.expect("failures");
        assert_eq!(later.iter().map(|r| r.integration_id.as_str()).collect::<Vec<_>>(), ["crm"]);
        assert!(store.latest_failures(2_000).await.expect("failures").is_empty());
    }

    #[tokio::test]
    async fn a_running_run_shows_its_progress_until_its_summary_replaces_it() {
        use $crate::RunStatus;
        let (_keep, store) = open().await;
        store.put_activation(&activation_record("users", None)).await.expect("put");
        let run = store.begin_run("users", &run_start("a", 100)).await.expect("begin").expect("free");
        let progress = json!({"progress": {"rows_read": 1000, "rows_sent": 500, "updated_at_ms": 150}});
        assert!(store.record_run_progress("users", run, &progress).await.expect("progress"));
        let runs = store.runs("users", 1).await.expect("runs");
        assert_eq!((runs[0].status, &runs[0].summary), (RunStatus::Running, &progress));
        // Another activation's run of that id is not this one.
        assert!(!store.record_run_progress("other", run, &progress).await.expect("progress"));
        store
            .finish_run("users", run, RunStatus::Succeeded, &json!({"rows_read": 1200}), 300, None)
            .await
            .expect("finish");
        // A late report changes nothing once the run has ended.
        assert!(!store.record_run_progress("users", run, &progress).await.expect("progress"));
        assert_eq!(store.runs("users", 1).await.expect("runs")[0].summary, json!({"rows_read": 1200}));
        // Nor once it was abandoned (its lease lapsed and another run began).
        let lapsed = store.begin_run("users", &run_start("a", 400)).await.expect("begin").expect("free");
        store.begin_run("users", &run_start("b", 400 + LEASE + 1)).await.expect("begin").expect("lapsed");
        assert!(!store.record_run_progress("users", lapsed, &progress).await.expect("progress"));
    }
    };
}

pub(crate) use store_conformance_tests;
