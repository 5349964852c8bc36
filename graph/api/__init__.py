"""The GraphQL API: strawberry types and resolvers, thin over the domain layer."""
