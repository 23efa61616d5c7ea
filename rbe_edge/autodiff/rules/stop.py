"""Rules of ops that gradients do not flow through."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def stop_gradient(ctx: RuleContext) -> InputGradients:
    """rbe_edge.BitplaneDecode: the decoded weight is where training stops.

    Its planes are integer codes and its scales and zero points stay frozen,
    so none of its inputs gets a gradient. Callers ask for the gradient of
    its output instead.
    """
    return ctx.no_gradients()
