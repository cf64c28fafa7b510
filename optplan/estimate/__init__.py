"""Estimation of the onboarding funnel, driver retention and capacity from event logs."""
