"""Alipay against material from outside windowpay: the public wire samples, Alipay's
official Python SDK as a counterpart, and the sandbox held to the samples' shape."""
