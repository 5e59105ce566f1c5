//! A tenant as a database, as a role, and as a `search_path`.

use lido_postgres::tenants::{PgTenants, TenantLimits};
use lido_postgres::Secret;

use super::template;
use crate::common;

const LIMITS: TenantLimits = TenantLimits {
    min: 0,
    max: 2,
    weight: 1,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_a_database_a_role_or_a_search_path() {
    let (server, db, cfg) = template("lido-tenants-forms");
    let dbs = [
        server.create_database().expect("db"),
        server.create_database().expect("db"),
    ];
    let per_db = PgTenants::<String>::builder(cfg.clone())
        .global_cap(4)
        .limits(LIMITS)
        .configure(|db, mut c| {
            c.dbname = Some(db.clone());
            common::builder(c, 1)
        })
        .build()
        .expect("databases");
    for d in &dbs {
        let conn = per_db.get(d).await.expect("db tenant");
        let now: String = conn
            .query_one("SELECT current_database()", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(&now, d);
    }

    let sql = "CREATE ROLE tenant_r1 LOGIN PASSWORD 'pw-r1'; \
               CREATE ROLE tenant_r2 LOGIN PASSWORD 'pw-r2'; \
               CREATE SCHEMA s1; CREATE SCHEMA s2; \
               CREATE TABLE s1.who AS SELECT 's1'::text AS name; \
               CREATE TABLE s2.who AS SELECT 's2'::text AS name;";
    common::psql(server, &db, sql);
    let per_role = PgTenants::<String>::builder(cfg.clone())
        .global_cap(4)
        .limits(LIMITS)
        .configure(|role, mut c| {
            c.user = Some(format!("tenant_{role}"));
            c.password = Some(Secret::new(format!("pw-{role}")));
            common::builder(c, 1)
        })
        .build()
        .expect("roles");
    for r in ["r1", "r2"] {
        let conn = per_role.get(&r.to_owned()).await.expect("role tenant");
        let user: String = conn
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(user, format!("tenant_{r}"));
    }

    let per_schema = PgTenants::<String>::builder(cfg)
        .global_cap(4)
        .limits(LIMITS)
        .configure(|schema, c| common::builder(c, 1).search_path(schema.clone()))
        .build()
        .expect("schemas");
    for s in ["s1", "s2"] {
        let conn = per_schema.get(&s.to_owned()).await.expect("schema tenant");
        let name: String = conn
            .query_one("SELECT name FROM who", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(name, s);
    }
}
