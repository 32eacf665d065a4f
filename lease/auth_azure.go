package lease

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// Vault's azure auth: the Instance Metadata Service of an Azure VM or
// scale set issues an access token for the VM's managed identity, and
// Vault checks it against Azure AD and the VM's subscription, resource
// group and name (from IMDS too, unless given).

const (
	azureIMDS             = "http://169.254.169.254"
	azureDefaultResource  = "https://management.azure.com/"
	azureTokenAPIVersion  = "2018-02-01"
	azureInstanceVersion  = "2021-02-01"
	azureMetadataHeader   = "Metadata"
	azureMetadataHeaderOn = "true"
)

// azureLoginData fetches a managed-identity token at every login and
// returns the login fields.
func (au *auth) azureLoginData(ctx context.Context) (map[string]any, error) {
	a := au.cfg
	base := strings.TrimRight(firstNonEmpty(a.AzureIMDS, azureIMDS), "/")
	q := url.Values{"api-version": {azureTokenAPIVersion}, "resource": {firstNonEmpty(a.AzureResource, azureDefaultResource)}}
	if a.AzureClientID != "" {
		q.Set("client_id", a.AzureClientID) // a user-assigned identity
	}
	tokURL := base + "/metadata/identity/oauth2/token?" + q.Encode()
	b, err := metadataGet(ctx, tokURL, azureMetadataHeader, azureMetadataHeaderOn)
	if err != nil {
		return nil, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		// Not err itself: a JSON error may quote the body.
		return nil, &cloudError{Source: "metadata server " + base + "/metadata/identity/oauth2/token", Err: errors.New("answer holds no access_token")}
	}
	body := map[string]any{
		"role": a.Role, "jwt": tok.AccessToken,
		"subscription_id": a.AzureSubscriptionID, "resource_group_name": a.AzureResourceGroup,
		"vm_name": a.AzureVMName, "vmss_name": a.AzureVMSSName,
	}
	if a.AzureSubscriptionID == "" || a.AzureResourceGroup == "" || (a.AzureVMName == "" && a.AzureVMSSName == "") {
		if err := azureFillInstance(ctx, base, body, a.AzureVMName == "" && a.AzureVMSSName == ""); err != nil {
			return nil, err
		}
	}
	for k, v := range body {
		if v == "" {
			delete(body, k)
		}
	}
	return body, nil
}

// azureFillInstance fills the login fields left empty in body from the
// instance metadata at base; the VM and scale set names only with vm
// (neither was given: Vault checks the scale set when vmss_name is given,
// else the VM).
func azureFillInstance(ctx context.Context, base string, body map[string]any, vm bool) error {
	instURL := base + "/metadata/instance?" + url.Values{"api-version": {azureInstanceVersion}}.Encode()
	b, err := metadataGet(ctx, instURL, azureMetadataHeader, azureMetadataHeaderOn)
	if err != nil {
		return err
	}
	var inst struct {
		Compute struct {
			SubscriptionID    string `json:"subscriptionId"`
			ResourceGroupName string `json:"resourceGroupName"`
			Name              string `json:"name"`
			VMScaleSetName    string `json:"vmScaleSetName"`
		} `json:"compute"`
	}
	if err := json.Unmarshal(b, &inst); err != nil {
		return &cloudError{Source: "metadata server " + base + "/metadata/instance", Err: err}
	}
	c := inst.Compute
	fill := func(key, v string) {
		if body[key] == "" {
			body[key] = v
		}
	}
	fill("subscription_id", c.SubscriptionID)
	fill("resource_group_name", c.ResourceGroupName)
	if vm {
		fill("vm_name", c.Name)
		fill("vmss_name", c.VMScaleSetName)
	}
	return nil
}
