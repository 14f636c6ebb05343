"""``grctl.workflow.handle.WorkflowHandle``: the public SDK's path to the client's run handle."""

from grctl.client.handle import WorkflowHandle

__all__ = ["WorkflowHandle"]
