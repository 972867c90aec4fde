"""One router per SigOpt v1 resource."""
