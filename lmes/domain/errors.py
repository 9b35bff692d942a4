"""Domain errors: a command that Nova would refuse raises one of these and records nothing."""


class DomainError(Exception):
    """A command refused by the domain's rules; the message says why in one line."""


class IllegalTransition(DomainError):
    """The migration's status does not allow this command (Nova would answer 400 or 409)."""


class InstanceNotMigratable(DomainError):
    """The instance fails Nova's API checks (vm_state, task_state, lock, migration in progress)."""
