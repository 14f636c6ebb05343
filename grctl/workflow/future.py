"""``grctl.workflow.future.WorkflowFuture``: the public SDK's path to the client's run-outcome future."""

from grctl.client.future import WorkflowFuture

__all__ = ["WorkflowFuture"]
