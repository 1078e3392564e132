"""PostfixAdmin's own schema (3.x, after its upgrade.php has run), written here
from its documented table layout for each database: the columns, types and
defaults PostfixAdmin creates, including the ones mailhost never reads
(``phone``, ``token``, ``password_expiry``, ...) and tables mailhost does not
manage (``admin``, ``domain_admins``, ``quota2``, ``config``).  Used to prove
that ``mailhost db adopt`` serves such a database without changing a row.
"""

from __future__ import annotations

MYSQL = [
    """CREATE TABLE config (id int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name varchar(20) NOT NULL DEFAULT '' UNIQUE, value varchar(20) NOT NULL DEFAULT '')""",
    """CREATE TABLE admin (username varchar(255) NOT NULL, password varchar(255) NOT NULL,
        superadmin tinyint(1) NOT NULL DEFAULT '0',
        created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (username))""",
    """CREATE TABLE domain (domain varchar(255) NOT NULL, description varchar(255) NOT NULL,
        aliases int(10) NOT NULL DEFAULT '0', mailboxes int(10) NOT NULL DEFAULT '0',
        maxquota bigint(20) NOT NULL DEFAULT '0', quota bigint(20) NOT NULL DEFAULT '0',
        transport varchar(255) NOT NULL, backupmx tinyint(1) NOT NULL DEFAULT '0',
        created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        active tinyint(1) NOT NULL DEFAULT '1', password_expiry int(11) DEFAULT '0',
        PRIMARY KEY (domain))""",
    """CREATE TABLE mailbox (username varchar(255) NOT NULL, password varchar(255) NOT NULL,
        name varchar(255) NOT NULL, maildir varchar(255) NOT NULL,
        quota bigint(20) NOT NULL DEFAULT '0', local_part varchar(255) NOT NULL,
        domain varchar(255) NOT NULL,
        created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        active tinyint(1) NOT NULL DEFAULT '1', phone varchar(30) NOT NULL DEFAULT '',
        email_other varchar(255) NOT NULL DEFAULT '', token varchar(255) NOT NULL DEFAULT '',
        token_validity datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        password_expiry datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        smtp_active tinyint(1) NOT NULL DEFAULT '1',
        PRIMARY KEY (username), KEY domain (domain))""",
    """CREATE TABLE alias (address varchar(255) NOT NULL, goto text NOT NULL,
        domain varchar(255) NOT NULL,
        created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (address), KEY domain (domain))""",
    """CREATE TABLE alias_domain (alias_domain varchar(255) NOT NULL DEFAULT '',
        target_domain varchar(255) NOT NULL DEFAULT '',
        created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (alias_domain),
        KEY active (active), KEY target_domain (target_domain))""",
    """CREATE TABLE quota2 (username varchar(100) NOT NULL, bytes bigint(20) NOT NULL DEFAULT '0',
        messages int(11) NOT NULL DEFAULT '0', PRIMARY KEY (username))""",
]

PGSQL = [
    """CREATE TABLE config (id SERIAL PRIMARY KEY, name varchar(20) NOT NULL UNIQUE,
        value varchar(20) NOT NULL)""",
    """CREATE TABLE admin (username character varying(255) NOT NULL PRIMARY KEY,
        password character varying(255) NOT NULL DEFAULT '',
        superadmin boolean NOT NULL DEFAULT false,
        created timestamp with time zone DEFAULT now(),
        modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true)""",
    """CREATE TABLE domain (domain character varying(255) NOT NULL PRIMARY KEY,
        description character varying(255) NOT NULL DEFAULT '',
        aliases integer NOT NULL DEFAULT 0, mailboxes integer NOT NULL DEFAULT 0,
        maxquota bigint NOT NULL DEFAULT 0, quota bigint NOT NULL DEFAULT 0,
        transport character varying(255) DEFAULT NULL,
        backupmx boolean NOT NULL DEFAULT false,
        created timestamp with time zone DEFAULT now(),
        modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true,
        password_expiry integer DEFAULT 0)""",
    """CREATE TABLE mailbox (username character varying(255) NOT NULL PRIMARY KEY,
        password character varying(255) NOT NULL DEFAULT '',
        name character varying(255) NOT NULL DEFAULT '',
        maildir character varying(255) NOT NULL DEFAULT '',
        quota bigint NOT NULL DEFAULT 0, local_part character varying(255) NOT NULL,
        domain character varying(255) NOT NULL,
        created timestamp with time zone DEFAULT now(),
        modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true,
        phone varchar(30) NOT NULL DEFAULT '', email_other varchar(255) NOT NULL DEFAULT '',
        token varchar(255) NOT NULL DEFAULT '',
        token_validity timestamp with time zone DEFAULT '2000-01-01',
        password_expiry timestamp with time zone DEFAULT '2000-01-01',
        smtp_active boolean NOT NULL DEFAULT true)""",
    "CREATE INDEX mailbox_domain_idx ON mailbox (domain)",
    """CREATE TABLE alias (address character varying(255) NOT NULL PRIMARY KEY,
        goto text NOT NULL, domain character varying(255) NOT NULL,
        created timestamp with time zone DEFAULT now(),
        modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true)""",
    "CREATE INDEX alias_address_active ON alias (address, active)",
    "CREATE INDEX alias_domain_idx ON alias (domain)",
    """CREATE TABLE alias_domain (alias_domain character varying(255) NOT NULL PRIMARY KEY,
        target_domain character varying(255) NOT NULL,
        created timestamp with time zone DEFAULT now(),
        modified timestamp with time zone DEFAULT now(), active boolean NOT NULL DEFAULT true)""",
    "CREATE INDEX alias_domain_active ON alias_domain (alias_domain, active)",
    """CREATE TABLE quota2 (username character varying(100) NOT NULL PRIMARY KEY,
        bytes bigint NOT NULL DEFAULT 0, messages integer NOT NULL DEFAULT 0)""",
]

SQLITE = [
    """CREATE TABLE config (id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
        name TEXT NOT NULL UNIQUE DEFAULT '', value TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE admin (username varchar(255) NOT NULL, password varchar(255) NOT NULL,
        superadmin tinyint(1) NOT NULL DEFAULT '0',
        created datetime NOT NULL DEFAULT '2000-01-01', modified datetime NOT NULL DEFAULT '2000-01-01',
        active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (username))""",
    """CREATE TABLE domain (domain varchar(255) NOT NULL, description varchar(255) NOT NULL,
        aliases int(11) NOT NULL DEFAULT 0, mailboxes int(11) NOT NULL DEFAULT 0,
        maxquota bigint(20) NOT NULL DEFAULT 0, quota bigint(20) NOT NULL DEFAULT 0,
        transport varchar(255) NOT NULL, backupmx tinyint(1) NOT NULL DEFAULT '0',
        created datetime NOT NULL DEFAULT '2000-01-01', modified datetime NOT NULL DEFAULT '2000-01-01',
        active tinyint(1) NOT NULL DEFAULT '1', password_expiry int DEFAULT 0,
        PRIMARY KEY (domain))""",
    """CREATE TABLE mailbox (username varchar(255) NOT NULL, password varchar(255) NOT NULL,
        name varchar(255) NOT NULL, maildir varchar(255) NOT NULL,
        quota bigint(20) NOT NULL DEFAULT 0, local_part varchar(255) NOT NULL,
        domain varchar(255) NOT NULL,
        created datetime NOT NULL DEFAULT '2000-01-01', modified datetime NOT NULL DEFAULT '2000-01-01',
        active tinyint(1) NOT NULL DEFAULT '1', phone varchar(30) NOT NULL DEFAULT '',
        email_other varchar(255) NOT NULL DEFAULT '', token varchar(255) NOT NULL DEFAULT '',
        token_validity datetime NOT NULL DEFAULT '2000-01-01',
        password_expiry datetime NOT NULL DEFAULT '2000-01-01',
        smtp_active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (username))""",
    """CREATE TABLE alias (address varchar(255) NOT NULL, goto text NOT NULL,
        domain varchar(255) NOT NULL,
        created datetime NOT NULL DEFAULT '2000-01-01', modified datetime NOT NULL DEFAULT '2000-01-01',
        active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (address))""",
    """CREATE TABLE alias_domain (alias_domain varchar(255) NOT NULL DEFAULT '',
        target_domain varchar(255) NOT NULL DEFAULT '',
        created datetime NOT NULL DEFAULT '2000-01-01', modified datetime NOT NULL DEFAULT '2000-01-01',
        active tinyint(1) NOT NULL DEFAULT '1', PRIMARY KEY (alias_domain))""",
    """CREATE TABLE quota2 (username varchar(100) NOT NULL, bytes bigint(20) NOT NULL DEFAULT 0,
        messages int(11) NOT NULL DEFAULT 0, PRIMARY KEY (username))""",
]

DDL = {"mysql": MYSQL, "pgsql": PGSQL, "sqlite": SQLITE}

#: A small PostfixAdmin installation: hashes as PostfixAdmin writes them (a bare
#: md5crypt ``$1$`` hash, recorded with ``openssl passwd -1 -salt abcdefgh s3cret``,
#: and a Dovecot-style ``{SHA512-CRYPT}`` one), self aliases, a catch-all, an
#: alias domain, a disabled mailbox and PostfixAdmin's 'config' version row.
MD5_S3CRET = "$1$abcdefgh$7.vq19w/w3Vm.hk1FOA7Q/"
#: ``openssl passwd -6 -salt abcdefgh s3cret``, in Dovecot notation.
SHA512_S3CRET = (
    "{SHA512-CRYPT}$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9"
    "rQ4DYaXoxAFSPFlcWdxjB."
)


def rows(kind: str) -> list[str]:
    true, false = ("true", "false") if kind == "pgsql" else ("1", "0")
    sha512 = SHA512_S3CRET
    return [
        "INSERT INTO config (name, value) VALUES ('version', '1844')",
        f"INSERT INTO admin (username, password, superadmin, active) VALUES "
        f"('admin@example.org', '{MD5_S3CRET}', {true}, {true})",
        "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport,"
        f" backupmx, active) VALUES ('example.org', 'PFA domain', 10, 10, 2048, 10240,"
        f" 'virtual', {false}, {true})",
        "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport,"
        f" backupmx, active) VALUES ('alias.example.org', '', 0, 0, 0, 0, 'virtual', {false},"
        f" {true})",
        "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain,"
        f" active, phone) VALUES ('user1@example.org', '{MD5_S3CRET}', 'User One',"
        f" 'example.org/user1/', 1024000000, 'user1', 'example.org', {true}, '+1 555')",
        "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain,"
        f" active) VALUES ('user2@example.org', '{sha512}', 'User Two', 'example.org/user2/', 0,"
        f" 'user2', 'example.org', {false})",
        "INSERT INTO alias (address, goto, domain, active) VALUES"
        f" ('user1@example.org', 'user1@example.org', 'example.org', {true})",
        "INSERT INTO alias (address, goto, domain, active) VALUES"
        f" ('user2@example.org', 'user2@example.org', 'example.org', {false})",
        "INSERT INTO alias (address, goto, domain, active) VALUES"
        f" ('sales@example.org', 'user1@example.org,user2@example.org', 'example.org', {true})",
        "INSERT INTO alias (address, goto, domain, active) VALUES"
        f" ('@example.org', 'user1@example.org', 'example.org', {true})",
        "INSERT INTO alias_domain (alias_domain, target_domain, active) VALUES"
        f" ('alias.example.org', 'example.org', {true})",
        "INSERT INTO quota2 (username, bytes, messages) VALUES ('user1@example.org', 4096, 2)",
    ]
