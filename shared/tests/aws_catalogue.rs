//! The role catalogue against the local emulator's accounts through the
//! real SDK: what a refresh lists across the staging and production
//! accounts, roles added, changed, retagged and deleted picked up by the
//! next refresh (a retag only through the rotation of re-reads, since
//! `ListRoles` shows no tags), paging, the per-refresh read budget, and the
//! schedule shared by concurrent sweeps. Each test has its own table and
//! its own managed path, so other tests' roles stay out of its catalogue.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;
use tollgate::aws::testing::{Clients, Emulator, local_config, unique_name};
use tollgate::aws::{
    AccountSettings, Accounts, Catalogue, CatalogueReport, CatalogueSettings,
    LOCAL_PRODUCTION_ACCOUNT, LOCAL_STAGING_ACCOUNT, RoleDirectory, Store, create_role,
    create_table, schema,
};
use tollgate::domain::{RoleInfo, Timestamp};

const MANAGED: (&str, &str) = ("tollgate:managed", "true");

struct Fixture {
    c: Clients,
    /// Ends every role name: IAM names are unique per account, and the
    /// emulator's accounts are shared by the binary's tests.
    suffix: String,
    path: String,
    staging: aws_sdk_iam::Client,
    prod: aws_sdk_iam::Client,
    catalogue: Catalogue,
}

async fn fixture(rereads: u32) -> Fixture {
    let c = Emulator::shared().unwrap().clients().await;
    let table = unique_name("catalogue");
    assert!(create_table(&c.dynamodb, &table).await.unwrap());
    // A managed path of this test's own.
    let suffix = unique_name("t");
    let path = format!("/cat-{suffix}/");
    let config = local_config(&table);
    let mut settings = AccountSettings::from_config(&config, "123456789012".into()).unwrap();
    settings.managed_role_path = path.clone();
    let accounts = Accounts::new(settings, c.sts.clone(), &c.iam);
    let store = Store::new(
        c.dynamodb.clone(),
        &table,
        schema::DEFAULT_RETENTION_SECONDS,
    );
    let catalogue = Catalogue::new(
        store,
        RoleDirectory::new(accounts, Duration::ZERO),
        CatalogueSettings {
            refresh_seconds: 300,
            rereads,
            cache_seconds: 0,
            ceiling_seconds: 43_200,
        },
    );
    Fixture {
        staging: c.iam_in(LOCAL_STAGING_ACCOUNT).await.unwrap(),
        prod: c.iam_in(LOCAL_PRODUCTION_ACCOUNT).await.unwrap(),
        c,
        suffix,
        path,
        catalogue,
    }
}

impl Fixture {
    fn name(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    async fn role(&self, iam: &aws_sdk_iam::Client, name: &str, tags: &[(&str, &str)]) -> String {
        create_role(iam, &self.path, &self.name(name), 3600, tags)
            .await
            .unwrap()
            .to_string()
    }

    async fn refresh(&self, account: &str, now: Timestamp) -> CatalogueReport {
        self.catalogue
            .refresh_account(account, now)
            .await
            .unwrap()
            .0
    }

    /// The catalogue as readers see it: ARN → tags.
    async fn listed(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.catalogue
            .roles()
            .await
            .unwrap()
            .iter()
            .map(|r: &RoleInfo| (r.arn.to_string(), r.tags.clone()))
            .collect()
    }
}

#[tokio::test]
async fn the_catalogue_lists_the_brokerable_roles_of_every_target_account() {
    let f = fixture(20).await;
    let staging = f
        .role(&f.staging, "Deploy", &[("environment", "staging"), MANAGED])
        .await;
    let ops = f
        .role(&f.prod, "Ops", &[("environment", "production"), MANAGED])
        .await;
    let admin = f
        .role(&f.prod, "Admin", &[("tollgate:approvals", "2"), MANAGED])
        .await;
    // Not listed: no managed tag, a Tollgate tag that does not parse, a
    // nested path, another path.
    f.role(&f.prod, "Unmanaged", &[("environment", "production")])
        .await;
    f.role(
        &f.prod,
        "BadTag",
        &[("tollgate:approvals", "many"), MANAGED],
    )
    .await;
    create_role(
        &f.prod,
        &format!("{}nested/", f.path),
        &f.name("Nested"),
        3600,
        &[MANAGED],
    )
    .await
    .unwrap();
    create_role(
        &f.prod,
        "/elsewhere/",
        &unique_name("Elsewhere"),
        3600,
        &[MANAGED],
    )
    .await
    .unwrap();
    assert!(
        f.listed().await.is_empty(),
        "nothing before the first refresh"
    );

    let now = Timestamp::now();
    let s = f.refresh(LOCAL_STAGING_ACCOUNT, now).await;
    assert_eq!((s.added, s.changed, s.removed), (1, 0, 0), "{s:?}");
    let p = f.refresh(LOCAL_PRODUCTION_ACCOUNT, now).await;
    assert_eq!((p.added, p.changed, p.removed), (4, 0, 0), "{p:?}");

    let listed = f.listed().await;
    let arns: Vec<&String> = listed.keys().collect();
    // Sorted by account, then name.
    assert_eq!(arns, [&staging, &admin, &ops]);
    assert_eq!(listed[&ops]["environment"], "production");
    let roles = f.catalogue.roles().await.unwrap();
    assert!(roles.iter().all(|r| r.role_id.starts_with("AROA")));
    assert_eq!(roles[0].max_session_seconds, 3600);
}

#[tokio::test]
async fn roles_added_changed_and_deleted_are_picked_up_by_the_next_refresh() {
    let f = fixture(0).await;
    let keep = f.role(&f.prod, "Keep", &[MANAGED]).await;
    let gone = f.role(&f.prod, "Gone", &[MANAGED]).await;
    let longer = f.role(&f.prod, "Longer", &[MANAGED]).await;
    let t0 = Timestamp::now();
    f.refresh(LOCAL_PRODUCTION_ACCOUNT, t0).await;
    assert_eq!(f.listed().await.len(), 3);

    let added = f.role(&f.prod, "Added", &[MANAGED]).await;
    f.prod
        .delete_role()
        .role_name(f.name("Gone"))
        .send()
        .await
        .unwrap();
    f.prod
        .update_role()
        .role_name(f.name("Longer"))
        .max_session_duration(7200)
        .send()
        .await
        .unwrap();
    let r = f.refresh(LOCAL_PRODUCTION_ACCOUNT, t0.plus(60)).await;
    assert_eq!(
        (r.added, r.changed, r.removed, r.reread),
        (1, 1, 1, 0),
        "{r:?}"
    );
    let listed = f.listed().await;
    let arns: Vec<&String> = listed.keys().collect();
    assert_eq!(arns, [&added, &keep, &longer]);
    assert!(!listed.contains_key(&gone));
    let roles = f.catalogue.roles().await.unwrap();
    let longer = roles
        .iter()
        .find(|r| r.arn.name() == f.name("Longer"))
        .unwrap();
    assert_eq!(longer.max_session_seconds, 7200);

    // Nothing changed: nothing read, nothing written.
    let r = f.refresh(LOCAL_PRODUCTION_ACCOUNT, t0.plus(120)).await;
    assert!(!r.changed_anything() && r.reread == 0, "{r:?}");
}

#[tokio::test]
async fn a_retag_is_noticed_by_the_rotation_of_re_reads_within_one_round() {
    // One re-read per refresh over four roles: every role is read again
    // within four refreshes, least recently read first.
    let f = fixture(1).await;
    for name in ["A", "B", "C", "D"] {
        f.role(&f.staging, name, &[("environment", "staging"), MANAGED])
            .await;
    }
    let t0 = Timestamp::now();
    f.refresh(LOCAL_STAGING_ACCOUNT, t0).await;
    // Retag C to production, and take D out of the catalogue by untagging.
    f.staging
        .tag_role()
        .role_name(f.name("C"))
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("environment")
                .value("production")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    f.staging
        .untag_role()
        .role_name(f.name("D"))
        .tag_keys("tollgate:managed")
        .send()
        .await
        .unwrap();
    let environment = |listed: &BTreeMap<String, BTreeMap<String, String>>, name: &str| {
        listed
            .iter()
            .find(|(arn, _)| arn.ends_with(&format!("/{}", f.name(name))))
            .map(|(_, tags)| tags["environment"].clone())
    };
    let mut seen = Vec::new();
    for round in 1..=4 {
        let r = f.refresh(LOCAL_STAGING_ACCOUNT, t0.plus(round * 60)).await;
        assert_eq!(r.reread + r.changed, 1, "one role read per refresh: {r:?}");
        let listed = f.listed().await;
        seen.push((
            environment(&listed, "C"),
            environment(&listed, "D").is_some(),
        ));
    }
    // Read in name order (all were read at t0): A, B, C, D.
    assert_eq!(
        seen,
        [
            (Some("staging".into()), true),
            (Some("staging".into()), true),
            (Some("production".into()), true),
            (Some("production".into()), false),
        ]
    );
}

#[tokio::test]
async fn listings_are_paged_and_reads_beyond_the_budget_wait_for_the_next_sweep() {
    let mut f = fixture(0).await;
    f.catalogue = f.catalogue.clone().with_limits(2, 2);
    for name in ["P1", "P2", "P3", "P4", "P5"] {
        f.role(&f.prod, name, &[MANAGED]).await;
    }
    f.c.calls.clear();
    let t0 = Timestamp::now();
    let first = f.catalogue.refresh_due(t0).await;
    assert_eq!(
        (first.accounts, first.added, first.failed),
        (2, 2, 0),
        "{first:?}"
    );
    assert!(first.more);
    // Due again at once, not after the interval.
    let second = f.catalogue.refresh_due(t0.plus(1)).await;
    assert_eq!((second.accounts, second.added), (1, 2), "{second:?}");
    let third = f.catalogue.refresh_due(t0.plus(2)).await;
    assert_eq!((third.added, third.more), (1, false), "{third:?}");
    assert_eq!(f.listed().await.len(), 5);
    // Now not due until the interval has passed.
    let idle = f.catalogue.refresh_due(t0.plus(60)).await;
    assert_eq!(idle, CatalogueReport::default());
    let later = f.catalogue.refresh_due(t0.plus(2 + 300)).await;
    assert_eq!(later.accounts, 2, "{later:?}");
}

#[tokio::test]
async fn concurrent_sweeps_refresh_each_account_once() {
    let f = fixture(0).await;
    f.role(&f.prod, "Shared", &[MANAGED]).await;
    let now = Timestamp::now();
    let runs = futures_join(
        (0..4)
            .map(|_| {
                let c = f.catalogue.clone();
                tokio::spawn(async move { c.refresh_due(now).await })
            })
            .collect(),
    )
    .await;
    let accounts: u32 = runs.iter().map(|r| r.accounts).sum();
    let added: u32 = runs.iter().map(|r| r.added).sum();
    assert_eq!((accounts, added), (2, 1), "{runs:?}");
}

async fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<CatalogueReport>>,
) -> Vec<CatalogueReport> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
