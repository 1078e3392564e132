"""Set-up code the tests share: the running mailhost server
(:mod:`tests.support.server`), main.cf text (:mod:`tests.support.maincf`), the
throwaway real Postfix of the recorders (:mod:`tests.support.postfix_lab`) and a
throwaway PostgreSQL primary with streaming replicas (:mod:`tests.support.pg_cluster`)."""
