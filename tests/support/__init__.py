"""Set-up code the tests share: the running mailhost server
(:mod:`tests.support.server`), main.cf text (:mod:`tests.support.maincf`) and
the throwaway real Postfix of the recorders (:mod:`tests.support.postfix_lab`)."""
