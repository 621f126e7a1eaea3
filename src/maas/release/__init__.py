"""A registered version becomes a verified OCI image: Bento, image build, infra-validation."""
